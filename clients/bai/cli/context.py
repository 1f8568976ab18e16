"""What every command gets: parsed options, the profile and a client built from them.

The client's endpoint and credentials are resolved, first match wins:

* endpoint: ``--endpoint``, BAI_ENDPOINT, the profile's ``endpoint``, 127.0.0.1:8090;
* credentials: BAI_ACCESS_KEY + BAI_SECRET_KEY, BAI_TOKEN, the profile's ``token``
  (from ``bai login``), the profile's ``access_key`` + ``secret_key``; else none.

bai.client (and grpc) is imported only when a command needs a client.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, TextIO

from bai.cli.config import DEFAULT_PROFILE, Config

if TYPE_CHECKING:
    from bai.client import Client, Credentials

DEFAULT_ENDPOINT = "127.0.0.1:8090"

Handler = Callable[[argparse.Namespace, "Context"], int]


class UsageError(Exception):
    """A command was called wrongly (exit code 2)."""


class AuthRequired(Exception):
    """No credentials are configured (exit code 3)."""


def common_options() -> argparse.ArgumentParser:
    """Options every command accepts, before or after the command words."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("common options")
    s = argparse.SUPPRESS
    group.add_argument("--json", action="store_true", default=s, help="print JSON, not tables")
    group.add_argument("--profile", default=s, help="profile (default: current; BAI_PROFILE)")
    group.add_argument("--endpoint", default=s, help="API address (default: profile's)")
    group.add_argument("--timeout", type=float, default=s, help="per-call timeout in seconds")
    return common


class Context:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._client: Client | None = None

    @property
    def out(self) -> TextIO:
        return sys.stdout

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    @cached_property
    def config(self) -> Config:
        return Config.load()

    @property
    def profile_name(self) -> str:
        return (
            getattr(self.args, "profile", None)
            or os.environ.get("BAI_PROFILE")
            or self.config.current
            or DEFAULT_PROFILE
        )

    @property
    def profile(self) -> dict[str, str]:
        return self.config.profiles.get(self.profile_name, {})

    @property
    def endpoint(self) -> str:
        return (
            getattr(self.args, "endpoint", None)
            or os.environ.get("BAI_ENDPOINT")
            or self.profile.get("endpoint")
            or DEFAULT_ENDPOINT
        )

    def credentials(self) -> Credentials | None:
        from bai.client import KeypairCredentials, TokenCredentials, credentials_from_env

        from_env = credentials_from_env()
        if from_env is not None:
            return from_env
        if self.profile.get("token"):
            return TokenCredentials(self.profile["token"])
        if self.profile.get("access_key") and self.profile.get("secret_key"):
            return KeypairCredentials(self.profile["access_key"], self.profile["secret_key"])
        return None

    def client(self, *, authenticated: bool = True) -> Client:
        """A client for the resolved endpoint; closed by ``close()``."""
        if self._client is None:
            from bai.client import Client

            credentials = self.credentials()
            if authenticated and credentials is None:
                raise AuthRequired(
                    f"no credentials for profile {self.profile_name!r}: run `bai login`, "
                    "or `bai config set access_key/secret_key`, or set BAI_ACCESS_KEY "
                    "and BAI_SECRET_KEY"
                )
            timeout = getattr(self.args, "timeout", None)
            kwargs = {} if timeout is None else {"timeout": timeout}
            self._client = Client(self.endpoint, credentials, **kwargs)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def print(self, text: str = "") -> None:
        print(text, file=self.out)

    def note(self, text: str) -> None:
        """A human remark on stderr (keeps --json output clean)."""
        print(text, file=sys.stderr)
