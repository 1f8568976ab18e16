"""What a stack component is, and the registry of components ``up`` starts.

Built-in components (PostgreSQL, Redis, etcd, Prometheus) register themselves when
``bai.stack.components`` is imported. Another module plugs in an extra process, for
instance Envoy, by registering a factory that turns a :class:`StackConfig` into a
:class:`ProcessSpec`::

    from bai.stack import ProcessSpec, StackConfig, http_ok, register_component, venv_binary

    def envoy(config: StackConfig) -> ProcessSpec:
        conf = config.component_dir("envoy") / "envoy.yaml"
        return ProcessSpec(
            name="envoy",
            argv=[str(venv_binary("envoy")), "-c", str(conf)],
            port=8090,
            health=http_ok("http://127.0.0.1:9901/ready"),
            prepare=lambda: write_envoy_config(conf),
        )

    register_component("envoy", envoy)
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bai.stack.config import StackConfig
from bai.stack.errors import StackError

HealthCheck = Callable[[], bool]
ComponentFactory = Callable[[StackConfig], "ProcessSpec"]


@dataclass(frozen=True)
class ProcessSpec:
    """How to run one daemon of the stack.

    - ``argv``: the command; it must stay in the foreground (the stack daemonizes it).
    - ``env``: added to the inherited environment.
    - ``health``: returns True once the process answers; it must not raise.
    - ``port``: the main port, shown by ``status`` and checked for conflicts.
    - ``user``: when running as root, run the process as this system user.
    - ``prepare``: runs before each start (create dirs, write config, initdb); idempotent.
    - ``after_start``: runs once the process is healthy after a start (create roles...).
    - ``stop_signal``: sent by ``down``; SIGKILL follows after ``stop_timeout`` seconds.
    """

    name: str
    argv: Sequence[str]
    health: HealthCheck
    port: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    user: str | None = None
    prepare: Callable[[], None] | None = None
    after_start: Callable[[], None] | None = None
    stop_signal: int = signal.SIGTERM
    start_timeout: float = 60.0
    stop_timeout: float = 20.0


@dataclass(frozen=True)
class _Entry:
    factory: ComponentFactory
    default: bool


_REGISTRY: dict[str, _Entry] = {}


def register_component(
    name: str, factory: ComponentFactory, *, default: bool = True, replace: bool = False
) -> None:
    """Add a component. ``default``: started by ``up`` when no ``--only`` is given."""
    if name in _REGISTRY and not replace:
        raise StackError(f"component {name!r} is already registered")
    _REGISTRY[name] = _Entry(factory, default)


def unregister_component(name: str) -> None:
    _REGISTRY.pop(name, None)


def component_names(*, only_default: bool = False) -> list[str]:
    """Registered components in registration order (built-ins first)."""
    return [n for n, e in _REGISTRY.items() if e.default or not only_default]


def build_specs(config: StackConfig, only: Iterable[str] | None = None) -> list[ProcessSpec]:
    """The specs of ``only`` (all default components when None), in registry order."""
    if only is None:
        names = component_names(only_default=True)
    else:
        wanted = list(dict.fromkeys(only))
        unknown = [n for n in wanted if n not in _REGISTRY]
        if unknown:
            known = ", ".join(_REGISTRY)
            raise StackError(f"unknown component(s): {', '.join(unknown)} (known: {known})")
        names = [n for n in _REGISTRY if n in wanted]
    specs = []
    for name in names:
        spec = _REGISTRY[name].factory(config)
        if spec.name != name:
            raise StackError(f"component {name!r} built a spec named {spec.name!r}")
        specs.append(spec)
    return specs


def venv_binary(name: str) -> Path:
    """A console script installed next to the running interpreter (e.g. ``envoy``)."""
    return Path(sys.executable).parent / name
