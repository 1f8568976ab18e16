"""Start, stop and list a session's apps (service ports) behind the app proxy.

Starting an app: the main kernel's agent starts the service and says where it
listens; the Coordinator gets a circuit routing to that host port; the caller
gets the circuit's URL and an app token for the session's owner (tokens are
bound to the circuit and its user, which is what the proxy checks). An app
that already has a circuit is returned again with a fresh token. The circuit
is the record that an app runs: the manager keeps no copy of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import session_pb2 as common_pb
from bai.api.coordinator.v1 import coordinator_pb2 as cpb
from bai.api.manager.v1 import session_pb2 as pb
from bai.common.errors import FailedPrecondition, NotFound
from bai.manager.apps.coordinator import CoordinatorClient
from bai.manager.auth.principal import Principal
from bai.manager.db.compute import KernelRow, SessionRow
from bai.manager.sessions import queries
from bai.manager.sessions.control import not_ready

SERVING = frozenset({"RUNNING", "RUNNING_DEGRADED"})


class AgentCaller(Protocol):
    """AgentClientPool.call: one unary call to an agent, errors as bai errors."""

    async def call(
        self, agent_id: str, method: str, request: Message, *, deadline: float = ...
    ) -> Any: ...


@dataclass(frozen=True)
class AppRequest:
    service: str
    port: int = 0
    envs: Mapping[str, str] | None = None
    arguments: Mapping[str, str] | None = None
    open_to_public: bool = False
    allowed_client_ips: Sequence[str] = ()


@dataclass
class SessionApps:
    sessions: async_sessionmaker[AsyncSession]
    agents: AgentCaller
    coordinator: CoordinatorClient
    token_ttl_seconds: float
    start_timeout: float

    async def start(self, p: Principal, session_id: uuid.UUID, want: AppRequest) -> pb.SessionApp:
        session, kernel = await self._serving_kernel(p, session_id, writable=True)
        port = _service_port(kernel, want.service)
        for circuit in await self.coordinator.circuits_of_session(str(session.id)):
            if circuit.app == want.service:
                return await self._app(port, circuit)
        assert kernel.agent_id is not None
        started: agent_pb2.StartServiceResponse = await self.agents.call(
            kernel.agent_id,
            "StartService",
            agent_pb2.StartServiceRequest(
                kernel_id=str(kernel.id),
                service=want.service,
                port=want.port,
                envs=dict(want.envs or {}),
                arguments=dict(want.arguments or {}),
            ),
            deadline=self.start_timeout,
        )
        circuit = await self.coordinator.create_circuit(
            cpb.CreateCircuitRequest(
                request_id=str(uuid.uuid4()),
                app=want.service,
                protocol=started.protocol,
                app_mode=cpb.APP_MODE_INTERACTIVE,
                envs=dict(want.envs or {}),
                arguments=dict(want.arguments or {}),
                open_to_public=want.open_to_public,
                allowed_client_ips=list(want.allowed_client_ips),
                user_id=str(session.user_id),
                session_ids=[str(session.id)],
                routes=[
                    cpb.Route(
                        route_id=str(kernel.id),
                        session_id=str(session.id),
                        session_name=session.name,
                        kernel_host=started.kernel_host,
                        kernel_port=started.host_port,
                        protocol=started.protocol,
                    )
                ],
            )
        )
        return await self._app(port, circuit)

    async def stop(self, p: Principal, session_id: uuid.UUID, service: str) -> None:
        """Remove the app's circuit, then stop the service (both idempotent)."""
        async with self.sessions() as db:
            loaded = await queries.load_writable(db, p, session_id)
        kernel = loaded.main_kernel
        if kernel is None:
            raise NotFound(f"the session has no service {service!r}")
        _service_port(kernel, service)
        for circuit in await self.coordinator.circuits_of_session(str(session_id)):
            if circuit.app == service:
                await self.coordinator.delete_circuit(circuit.id)
        if kernel.status == "RUNNING" and kernel.agent_id:
            await self.agents.call(
                kernel.agent_id,
                "ShutdownService",
                agent_pb2.ShutdownServiceRequest(kernel_id=str(kernel.id), service=service),
            )

    async def list(self, p: Principal, session_id: uuid.UUID) -> list[pb.SessionApp]:
        async with self.sessions() as db:
            loaded = await queries.load_visible(db, p, session_id)
        kernel = loaded.main_kernel
        if kernel is None:
            return []
        running: dict[str, cpb.Circuit] = {}
        if loaded.session.status in SERVING and self.coordinator.address:
            for circuit in await self.coordinator.circuits_of_session(str(session_id)):
                running[circuit.app] = circuit
        out = []
        for port in queries.service_ports_to_proto(kernel.service_ports):
            found = running.get(port.name)
            app = pb.SessionApp(service_port=port, is_running=found is not None)
            if found is not None:
                app.url = found.url
                app.circuit_id = found.id
                app.open_to_public = found.open_to_public
            out.append(app)
        return out

    async def _serving_kernel(
        self, p: Principal, session_id: uuid.UUID, *, writable: bool
    ) -> tuple[SessionRow, KernelRow]:
        async with self.sessions() as db:
            loaded = await (queries.load_writable if writable else queries.load_visible)(
                db, p, session_id
            )
        kernel = loaded.main_kernel
        if loaded.session.status not in SERVING:
            raise not_ready(loaded.session)
        if kernel is None or kernel.status != "RUNNING" or not kernel.agent_id:
            raise FailedPrecondition(
                "the session's main kernel is not running", reason="SESSION_NOT_READY"
            )
        return loaded.session, kernel

    async def _app(self, port: common_pb.ServicePort, circuit: cpb.Circuit) -> pb.SessionApp:
        app = pb.SessionApp(
            service_port=port,
            is_running=True,
            url=circuit.url,
            circuit_id=circuit.id,
            open_to_public=circuit.open_to_public,
        )
        if not circuit.open_to_public:
            token, expires = await self.coordinator.issue_token(
                circuit.id, circuit.user_id, self.token_ttl_seconds
            )
            app.token = token
            app.token_expires_at.CopyFrom(_timestamp(expires))
        return app


def _service_port(kernel: KernelRow, service: str) -> common_pb.ServicePort:
    for port in queries.service_ports_to_proto(kernel.service_ports):
        if port.name == service:
            return port
    known = ", ".join(
        sorted(str(p.get("name")) for p in kernel.service_ports if isinstance(p, dict))
    )
    raise NotFound(
        f"the session has no service {service!r} (it has: {known or 'none'})",
        metadata={"service": service[:64]},
    )


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp
