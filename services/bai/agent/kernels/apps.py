"""Apps (service ports) of a running kernel: which one, where it is reachable, and the
runner starting or stopping it as the kernel's user.

The app must be one of the kernel's service ports (the image's
ai.backend.service-ports label, the intrinsic terminal, preopen ports). It is
reachable on the node at the host port its container port was published on
(Docker), or that it listens on itself (process runtime: BAI_PORT_<port>).
Preopen ports are the user's own servers: nothing is started for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bai.agent.kernels.lifecycle import KernelManager
from bai.agent.runner import protocol
from bai.agent.runner.client import RunnerUnavailable
from bai.api.common.v1 import session_pb2
from bai.common.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable

# Besides the runner's own wait for the port: the reply's way back.
REPLY_MARGIN_SECONDS = 5.0


@dataclass(frozen=True)
class AppAddress:
    kernel_host: str
    host_port: int
    container_port: int
    protocol: int
    already_running: bool = False


def find_app(ports: list[session_pb2.ServicePort], name: str) -> session_pb2.ServicePort | None:
    return next((port for port in ports if port.name == name), None)


def app_address(port: session_pb2.ServicePort, wanted: int, kernel_host: str) -> AppAddress:
    """Where `wanted` (0: the first container port) of the app is reachable."""
    container_ports = list(port.container_ports)
    if wanted and wanted not in container_ports:
        raise InvalidArgument.field(
            "port", f"{port.name} listens on {container_ports}, not on {wanted}"
        )
    index = container_ports.index(wanted) if wanted else 0
    if index >= len(port.host_ports):
        raise FailedPrecondition(
            f"{port.name} has no host port", reason="SESSION_NOT_READY", metadata={}
        )
    return AppAddress(kernel_host, port.host_ports[index], container_ports[index], port.protocol)


def app_arguments(arguments: Mapping[str, str]) -> list[str]:
    """{"--option": "value"} -> ["--option=value"]; a bare flag has an empty value."""
    argv = []
    for key, value in sorted(arguments.items()):
        if not key.startswith("-"):
            raise InvalidArgument.field(f"arguments[{key}]", "must be an option (start with -)")
        argv.append(f"{key}={value}" if value else key)
    return argv


def service_failed(name: str, detail: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"the app {name} did not start: {detail}",
        reason="SERVICE_START_FAILED",
        metadata={"service": name, "detail": detail[-1000:]},
    )


async def start_app(
    km: KernelManager,
    kernel_id: str,
    name: str,
    wanted_port: int,
    envs: Mapping[str, str],
    arguments: Mapping[str, str],
) -> AppAddress:
    record = km.require_running(kernel_id)
    port = find_app(record.service_ports, name)
    if port is None:
        raise NotFound(
            f"kernel {kernel_id} has no app {name!r}",
            metadata={"kernel_id": kernel_id, "service": name},
        )
    address = app_address(port, wanted_port, km.kernel_host)
    argv = app_arguments(arguments)
    if port.protocol == session_pb2.APP_PROTOCOL_PREOPEN:
        return address
    timeout = km.ctx.config.app_start_timeout
    request = {
        "op": protocol.OP_SERVICE_START,
        "name": name,
        "ports": list(port.container_ports),
        "environ": dict(envs),
        "arguments": argv,
        "timeout": timeout,
    }
    reply = await _exchange(km, kernel_id, request, timeout + REPLY_MARGIN_SECONDS)
    if reply["op"] != protocol.OP_SERVICE:
        raise service_failed(name, str(reply.get("message") or "unknown failure"))
    return AppAddress(
        address.kernel_host,
        address.host_port,
        address.container_port,
        address.protocol,
        already_running=bool(reply.get("already_running")),
    )


async def stop_app(km: KernelManager, kernel_id: str, name: str) -> None:
    """Idempotent: an app that does not run, or a kernel that no longer runs, is fine."""
    record = km.get(kernel_id)
    port = find_app(record.service_ports, name)
    if record.status != session_pb2.KERNEL_STATUS_RUNNING or port is None:
        return
    if port.protocol == session_pb2.APP_PROTOCOL_PREOPEN:
        return
    request = {"op": protocol.OP_SERVICE_STOP, "name": name}
    reply = await _exchange(km, kernel_id, request, REPLY_MARGIN_SECONDS * 3)
    if reply["op"] != protocol.OP_SERVICE:
        raise Unavailable(f"the runner could not stop {name}: {reply.get('message')}")


async def _exchange(
    km: KernelManager, kernel_id: str, request: protocol.Message, wait_seconds: float
) -> protocol.Message:
    client = km.runner.connect(km.socket_path(kernel_id))
    try:
        return await client.exchange(request, wait_seconds)
    except RunnerUnavailable as exc:
        raise Unavailable(f"the kernel's runner: {exc}") from exc
