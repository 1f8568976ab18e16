"""The internal HTTP port: Prometheus /metrics plus extra JSON endpoints.

prometheus-client's WSGI app serves /metrics; a component may add more GET
endpoints (the manager adds /metrics/service_discovery for Prometheus HTTP
service discovery). Runs in a daemon thread so it never blocks the event loop.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import Counter, Histogram, make_wsgi_app

RPC_REQUESTS = Counter("bai_rpc_requests_total", "RPCs handled", ["component", "method", "code"])
RPC_LATENCY = Histogram(
    "bai_rpc_duration_seconds",
    "RPC handling time",
    ["component", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

JsonEndpoint = Callable[[], Any]


def rpc_observer(component: str) -> Callable[[str, str, float], None]:
    """Record one RPC's outcome; label children are cached (labels() is slow)."""
    counters: dict[tuple[str, str], Any] = {}
    histograms: dict[str, Any] = {}

    def observe(method: str, code: str, seconds: float) -> None:
        counter = counters.get((method, code))
        if counter is None:
            counter = counters[(method, code)] = RPC_REQUESTS.labels(component, method, code)
        histogram = histograms.get(method)
        if histogram is None:
            histogram = histograms[method] = RPC_LATENCY.labels(component, method)
        counter.inc()
        histogram.observe(seconds)

    return observe


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


class MetricsServer:
    def __init__(self, host: str, port: int, json_endpoints: dict[str, JsonEndpoint] | None = None):
        self._metrics_app = make_wsgi_app()
        self._json = dict(json_endpoints or {})
        self._server: WSGIServer = make_server(host, port, self._app, handler_class=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        endpoint = self._json.get(path)
        if endpoint is not None:
            body = json.dumps(endpoint()).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        if path in ("/metrics", "/"):
            return self._metrics_app(environ, start_response)  # type: ignore[no-any-return]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
