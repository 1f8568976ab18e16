"""SessionService's app RPCs for the fake session service (mixed into FakeSessions).

A running session offers two apps: ``ttyd`` (http, 7681) and ``jupyter`` (http,
8080); starting one gives it a port-mode URL and, unless public, a token.
"""

from __future__ import annotations

from typing import Any

import grpc

from bai.api.common.v1 import session_pb2 as common
from bai.api.manager.v1 import session_pb2
from tests.client.fakes import fail, handler

PORTS = {
    "ttyd": common.ServicePort(
        name="ttyd", protocol=common.APP_PROTOCOL_HTTP, container_ports=[7681]
    ),
    "jupyter": common.ServicePort(
        name="jupyter", protocol=common.APP_PROTOCOL_HTTP, container_ports=[8080]
    ),
}


class FakeApps:
    state: Any

    def _apps(self, session_id: str) -> dict[str, session_pb2.SessionApp]:
        running = self.state.running(session_id)
        return self.state.apps.setdefault(running.id, {})  # type: ignore[no-any-return]

    @handler
    def StartService(self, request: Any, context: Any) -> Any:
        apps = self._apps(request.session_id)
        if request.service not in PORTS:
            raise fail(grpc.StatusCode.NOT_FOUND, f"no service {request.service!r}")
        app = session_pb2.SessionApp(
            service_port=PORTS[request.service],
            is_running=True,
            url=f"http://127.0.0.1:{10205 + len(apps)}/",
            circuit_id=f"circuit-{request.service}",
            open_to_public=request.open_to_public,
        )
        if not request.open_to_public:
            app.token = "tok-" + request.service
            app.token_expires_at.FromSeconds(1_900_000_000)
        apps[request.service] = app
        return session_pb2.StartServiceResponse(app=app)

    @handler
    def ShutdownService(self, request: Any, context: Any) -> Any:
        self._apps(request.session_id).pop(request.service, None)
        return session_pb2.ShutdownServiceResponse()

    @handler
    def ListServices(self, request: Any, context: Any) -> Any:
        apps = self._apps(request.session_id)
        listed = []
        for name, port in PORTS.items():
            app = session_pb2.SessionApp(service_port=port, is_running=name in apps)
            if name in apps:
                app.url = apps[name].url
            listed.append(app)
        return session_pb2.ListServicesResponse(apps=listed)
