"""The local stack: PostgreSQL, Redis, etcd and Prometheus (plus registered extras such as
Envoy) as daemon processes with their data, pid files and logs under a state dir.

    bai stack up | down | status | reset   [--state-dir DIR] [--only postgres,redis]
"""

from bai.stack.config import DEFAULT_PORTS, StackConfig, default_state_dir
from bai.stack.errors import StackError
from bai.stack.health import command_ok, http_ok, redis_ping, tcp_check, tcp_open
from bai.stack.install import ensure_installed, pg_bindir
from bai.stack.spec import (
    ComponentFactory,
    HealthCheck,
    ProcessSpec,
    build_specs,
    component_names,
    register_component,
    unregister_component,
    venv_binary,
)
from bai.stack.stack import ComponentStatus, Stack, UpResult
from bai.stack.testing import ThrowawayStack, free_ports, throwaway_stack

__all__ = [
    "DEFAULT_PORTS",
    "ComponentFactory",
    "ComponentStatus",
    "HealthCheck",
    "ProcessSpec",
    "Stack",
    "StackConfig",
    "StackError",
    "ThrowawayStack",
    "UpResult",
    "build_specs",
    "command_ok",
    "component_names",
    "default_state_dir",
    "ensure_installed",
    "free_ports",
    "http_ok",
    "pg_bindir",
    "redis_ping",
    "register_component",
    "tcp_check",
    "tcp_open",
    "throwaway_stack",
    "unregister_component",
    "venv_binary",
]
