"""The HTTP transfer server: routes, the error edge, metrics, start and stop."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import ClientPayloadError, web
from aiohttp.typedefs import Middleware

from bai.common.errors import BaiError, Unavailable
from bai.common.metrics import rpc_observer
from bai.storage.context import StorageContext
from bai.storage.http.errors import code_of, error_response
from bai.storage.http.handlers import TransferHandlers, response_started

log = logging.getLogger("bai.storage.http")
observe = rpc_observer("storage")

PREFIX = "/storage/v1"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _edge(ctx: StorageContext) -> Middleware:
    @web.middleware
    async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        method = f"HTTP {request.method} {request.path}"
        response_started.set(False)
        try:
            if ctx.shutting_down:
                raise Unavailable("the storage proxy is shutting down", reason="SHUTTING_DOWN")
            response = await handler(request)
        except web.HTTPException:
            raise  # aiohttp's own answers: 404 for unknown paths, 405, ...
        except (ConnectionError, ClientPayloadError) as exc:
            # The client went away mid-transfer; what was written stays for a resume.
            observe(method, "CANCELLED", time.perf_counter() - started)
            if response_started.get():
                raise
            log.info("transfer client went away", extra={"path": request.path, "error": str(exc)})
            return web.Response(status=499)
        except Exception as exc:
            code = code_of(exc).name if isinstance(exc, BaiError) else "INTERNAL"
            observe(method, code, time.perf_counter() - started)
            if response_started.get():
                raise
            return error_response(exc)
        observe(method, "OK", time.perf_counter() - started)
        return response

    return edge


def transfer_app(ctx: StorageContext) -> web.Application:
    handlers = TransferHandlers(ctx)
    app = web.Application(middlewares=[_edge(ctx)])
    app.router.add_get(f"{PREFIX}/download", handlers.download)  # HEAD too
    app.router.add_put(f"{PREFIX}/upload", handlers.upload)
    app.router.add_head(f"{PREFIX}/upload", handlers.upload_status)
    return app


class TransferHttpServer:
    """Serves `transfer_app` on bind:port (0: any free port) until `stop`."""

    def __init__(self, ctx: StorageContext, bind: str, port: int, grace_seconds: float) -> None:
        self.ctx = ctx
        self.bind = bind
        self.port = port
        self.grace_seconds = grace_seconds
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        runner = web.AppRunner(
            transfer_app(self.ctx), access_log=None, shutdown_timeout=self.grace_seconds
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.bind, self.port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        """Stop accepting; transfers in flight get the grace period to finish."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
