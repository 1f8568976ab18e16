"""``up``, ``down``, ``status`` and ``reset`` over the registered components."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import bai.stack.components  # noqa: F401  (registers the built-in components)
from bai.stack import process
from bai.stack.config import MARKER_FILE, StackConfig, record_ports
from bai.stack.errors import StackError
from bai.stack.health import tcp_open
from bai.stack.install import ensure_installed
from bai.stack.spec import ProcessSpec, build_specs, component_names

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class UpResult:
    name: str
    pid: int
    port: int | None
    started: bool  # False when it was already running
    seconds: float


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    port: int | None
    healthy: bool

    @property
    def running(self) -> bool:
        return self.pid is not None


def _parallel(fn: Callable[[T], R], items: Sequence[T]) -> list[R | BaseException]:
    """``fn`` over ``items`` in threads; results (or the exception raised) in order."""
    if not items:
        return []

    def guarded(item: T) -> R | BaseException:
        try:
            return fn(item)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(guarded, items))


def _raise_failures(results: Sequence[object]) -> None:
    failures = [r for r in results if isinstance(r, BaseException)]
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise StackError("\n".join(str(f) for f in failures))


class Stack:
    """One stack instance: a state dir, its ports, and the components selected by ``only``."""

    def __init__(
        self, config: StackConfig, only: Iterable[str] | None = None, *, install: bool = True
    ) -> None:
        self.config = config
        self.only = None if only is None else list(only)
        self.install = install

    @property
    def names(self) -> list[str]:
        if self.only is None:
            return component_names(only_default=True)
        return [s.name for s in build_specs(self.config, self.only)]

    def specs(self) -> list[ProcessSpec]:
        return build_specs(self.config, self.only)

    # up
    def up(self) -> list[UpResult]:
        """Start what is not running and wait until everything answers; idempotent."""
        if self.install:
            ensure_installed(self.names)
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        (self.config.state_dir / MARKER_FILE).touch()
        record_ports(self.config)
        results = _parallel(self._up_one, self.specs())
        _raise_failures(results)
        return [r for r in results if isinstance(r, UpResult)]

    def _up_one(self, spec: ProcessSpec) -> UpResult:
        t0 = time.monotonic()
        pid = process.running_pid(self.config, spec.name)
        if pid is not None:
            if not spec.health():
                process.wait_healthy(self.config, spec, pid)
            return UpResult(spec.name, pid, spec.port, False, time.monotonic() - t0)
        process.remove_run_info(self.config, spec.name)
        if spec.port is not None and tcp_open(self.config.host, spec.port, timeout=0.2):
            raise StackError(
                f"{spec.name}: port {self.config.host}:{spec.port} is in use by a process "
                f"this stack did not start (state dir {self.config.state_dir})"
            )
        if spec.prepare is not None:
            spec.prepare()
        pid = process.start(self.config, spec)
        try:
            process.wait_healthy(self.config, spec, pid)
            if spec.after_start is not None:
                spec.after_start()
        except BaseException:
            process.stop(self.config, spec.name, spec.stop_timeout)
            raise
        return UpResult(spec.name, pid, spec.port, True, time.monotonic() - t0)

    # down
    def down(self) -> list[str]:
        """Stop the selected components (all recorded ones without ``only``)."""
        names = process.recorded_names(self.config) if self.only is None else self.names
        timeouts = {s.name: s.stop_timeout for s in self._known_specs()}
        results = _parallel(lambda n: process.stop(self.config, n, timeouts.get(n, 20.0)), names)
        _raise_failures(results)
        return [n for n, r in zip(names, results, strict=True) if r is True]

    def _known_specs(self) -> list[ProcessSpec]:
        try:
            return self.specs()
        except StackError:
            return []

    # status
    def status(self) -> list[ComponentStatus]:
        specs = {s.name: s for s in self.specs()}
        names = list(specs)
        if self.only is None:
            names += [n for n in process.recorded_names(self.config) if n not in specs]

        def one(name: str) -> ComponentStatus:
            info = process.read_run_info(self.config, name)
            spec = specs.get(name)
            pid = process.running_pid(self.config, name)
            port = spec.port if spec is not None else None
            if info is not None and info.port is not None:
                port = info.port
            if pid is None:
                return ComponentStatus(name, None, port, False)
            healthy = spec.health() if spec is not None else True
            return ComponentStatus(name, pid, port, healthy)

        results = _parallel(one, names)
        _raise_failures(results)
        return [r for r in results if isinstance(r, ComponentStatus)]

    # reset
    def reset(self) -> None:
        """``down``, then delete the state dir (only the selected components' data with
        ``only``). Refuses a non-empty directory that ``up`` never marked as a state dir."""
        self.down()
        root = self.config.state_dir
        if not root.exists():
            return
        if not (root / MARKER_FILE).exists() and any(root.iterdir()):
            raise StackError(f"{root} does not look like a bai stack state dir; not deleting it")
        if self.only is None:
            shutil.rmtree(root)
            return
        for name in self.names:
            shutil.rmtree(self.config.component_dir(name), ignore_errors=True)
            self.config.log_file(name).unlink(missing_ok=True)
