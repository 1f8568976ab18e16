"""A fake terminal for CLI tests: stdout/stderr that keep the order of writes across both,
and a stdin that notes what stdout showed when it was read."""

from __future__ import annotations

import io

import pytest


class Terminal:
    """stdout and stderr that record the order of writes across both."""

    def __init__(self, stdin: str = "") -> None:
        self.writes: list[tuple[str, str]] = []
        self.stdin = io.StringIO(stdin)
        self.stdout_at_read: list[str] = []

    def stream(self, name: str) -> io.TextIOWrapper:
        terminal = self

        class Recorder(io.BytesIO):
            def write(self, data: object) -> int:
                assert isinstance(data, bytes | bytearray)
                terminal.writes.append((name, bytes(data).decode()))
                return len(data)

        return io.TextIOWrapper(Recorder(), write_through=True)

    def text(self, name: str) -> str:
        return "".join(t for n, t in self.writes if n == name)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr("sys.stdout", self.stream("out"))
        monkeypatch.setattr("sys.stderr", self.stream("err"))
        stdin, terminal = self.stdin, self

        class Stdin:
            def readline(self) -> str:
                terminal.stdout_at_read.append(terminal.text("out"))
                return stdin.readline()

        monkeypatch.setattr("sys.stdin", Stdin())
