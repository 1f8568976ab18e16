"""CLI profiles in ``$BAI_CONFIG_DIR/config.toml`` (default ``~/.config/bai/config.toml``).

    current = "default"

    [profiles.default]
    endpoint = "127.0.0.1:8090"
    access_key = "AKIA..."
    secret_key = "..."
    token = "..."            # written by `bai login`, removed by `bai logout`

The file is written with mode 0600 (it holds secrets). Environment variables
override a profile: BAI_ENDPOINT, BAI_ACCESS_KEY + BAI_SECRET_KEY, BAI_TOKEN,
BAI_PROFILE (which profile to use).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

PROFILE_KEYS = ("endpoint", "access_key", "secret_key", "token", "username")
SECRET_KEYS = frozenset({"secret_key", "token"})
DEFAULT_PROFILE = "default"
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class ConfigError(Exception):
    """The config file cannot be read or a setting is not valid."""


def config_dir() -> Path:
    if os.environ.get("BAI_CONFIG_DIR"):
        return Path(os.environ["BAI_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "bai"


@dataclass
class Config:
    """All profiles and which one is current."""

    current: str = DEFAULT_PROFILE
    profiles: dict[str, dict[str, str]] = field(default_factory=dict)
    path: Path = field(default_factory=lambda: config_dir() / "config.toml")

    @classmethod
    def load(cls, path: Path | None = None) -> Config:
        path = path or config_dir() / "config.toml"
        if not path.exists():
            return cls(path=path)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
        profiles: dict[str, dict[str, str]] = {}
        raw_profiles = data.get("profiles", {})
        if not isinstance(raw_profiles, dict):
            raise ConfigError(f"{path}: [profiles] must be a table")
        for name, values in raw_profiles.items():
            if not isinstance(values, dict):
                raise ConfigError(f"{path}: profile {name!r} must be a table")
            profiles[name] = {k: str(v) for k, v in values.items() if k in PROFILE_KEYS}
        current = str(data.get("current", DEFAULT_PROFILE))
        return cls(current=current, profiles=profiles, path=path)

    def profile(self, name: str) -> dict[str, str]:
        return self.profiles.setdefault(name, {})

    def set(self, name: str, key: str, value: str) -> None:
        if key not in PROFILE_KEYS:
            raise ConfigError(f"unknown setting {key!r} (one of: {', '.join(PROFILE_KEYS)})")
        self.profile(name)[key] = value

    def unset(self, name: str, key: str) -> bool:
        return self.profiles.get(name, {}).pop(key, None) is not None

    def render(self) -> str:
        lines = [f"current = {_quote(self.current)}"]
        for name in sorted(self.profiles):
            lines += ["", f"[profiles.{_key(name)}]"]
            values = self.profiles[name]
            lines += [f"{k} = {_quote(values[k])}" for k in PROFILE_KEYS if k in values]
        return "\n".join(lines) + "\n"

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".config.", suffix=".toml")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(self.render())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _quote(value: str) -> str:
    # JSON string escapes are valid TOML basic-string escapes.
    return json.dumps(value, ensure_ascii=False)


def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else _quote(name)


def mask(key: str, value: str) -> str:
    """Hide secrets when showing a profile."""
    if key in SECRET_KEYS and value:
        return value[:4] + "…" if len(value) > 8 else "…"
    return value
