"""Throwaway instances for tests: free ports, a temp state dir, torn down afterwards."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

from bai.stack.config import StackConfig
from bai.stack.stack import Stack

#: What the ``stack`` test fixture runs.
TEST_COMPONENTS = ("postgres", "redis", "etcd")

#: Ports each component needs (etcd also needs a peer port).
_PORT_NAMES = {"etcd": ("etcd", "etcd-peer")}


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports that were free a moment ago."""
    with contextlib.ExitStack() as stack:
        socks = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]


_SHM = Path("/dev/shm")
_SHM_MIN_FREE = 512 * 1024 * 1024


def scratch_dir() -> Path | None:
    """/dev/shm when it is a usable tmpfs (fsync is free there), else None (the default
    temp dir). etcd 3.4 has no --unsafe-no-fsync, and fdatasync on a busy disk can take
    over a second."""
    try:
        st = os.statvfs(_SHM)
    except OSError:
        return None
    if not os.access(_SHM, os.W_OK) or st.f_bavail * st.f_frsize < _SHM_MIN_FREE:
        return None
    return _SHM


class ThrowawayStack:
    """A stack on free ports in a fresh temp dir; ``start()``/``stop()`` or ``with``.

    The state dir goes to /dev/shm when possible (see :func:`scratch_dir`).
    Exposes ``pg_dsn`` (SQLAlchemy asyncpg URL), ``redis_url`` and ``etcd_endpoint``
    (``host:port``). The temp dir is world-traversable so that PostgreSQL, run as the
    ``postgres`` user when we are root, can reach its data dir.
    """

    def __init__(
        self,
        components: Iterable[str] = TEST_COMPONENTS,
        *,
        base_dir: Path | None = None,
        install: bool = True,
    ) -> None:
        self.components = list(components)
        names = [p for c in self.components for p in _PORT_NAMES.get(c, (c,))]
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        base = base_dir if base_dir is not None else scratch_dir()
        self.state_dir = Path(tempfile.mkdtemp(prefix="bai-stack-", dir=base))
        os.chmod(self.state_dir, 0o755)
        self.config = StackConfig(state_dir=self.state_dir, ports=ports, ephemeral=True)
        self.stack = Stack(self.config, self.components, install=install)
        self._started = False

    @property
    def pg_dsn(self) -> str:
        return self.config.pg_dsn

    @property
    def redis_url(self) -> str:
        return self.config.redis_url

    @property
    def etcd_endpoint(self) -> str:
        return self.config.etcd_endpoint

    @property
    def etcd_host(self) -> str:
        return self.config.host

    @property
    def etcd_port(self) -> int:
        return self.config.port("etcd")

    def start(self) -> ThrowawayStack:
        atexit.register(self.stop)
        self._started = True
        try:
            self.stack.up()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every process and delete the temp dir; safe to call twice."""
        if not self._started:
            return
        self._started = False
        atexit.unregister(self.stop)
        try:
            self.stack.down()
        finally:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> ThrowawayStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def throwaway_stack(components: Iterable[str] = TEST_COMPONENTS) -> Iterator[ThrowawayStack]:
    with ThrowawayStack(components) as stack:
        yield stack
