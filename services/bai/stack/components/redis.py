"""Redis: no AOF; no RDB snapshots either for throwaway instances."""

from __future__ import annotations

from bai.stack.config import StackConfig
from bai.stack.health import redis_ping
from bai.stack.install import binary
from bai.stack.spec import ProcessSpec

NAME = "redis"


def spec(config: StackConfig) -> ProcessSpec:
    port = config.port(NAME)
    data = config.component_dir(NAME)
    argv = [
        str(binary("redis-server")),
        "--bind", config.host,
        "--port", str(port),
        "--dir", str(data),
        "--daemonize", "no",
        "--appendonly", "no",
        "--protected-mode", "no",
        "--logfile", "",
    ]  # fmt: skip
    if config.ephemeral:
        argv += ["--save", ""]
    return ProcessSpec(
        name=NAME,
        argv=argv,
        port=port,
        health=lambda: redis_ping(config.host, port),
        cwd=data,
        prepare=lambda: data.mkdir(parents=True, exist_ok=True),
    )
