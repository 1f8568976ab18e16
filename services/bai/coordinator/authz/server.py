"""The HTTP ext_authz endpoint (aiohttp): Envoy sends each request's headers here, with
the path prefixed by /authz, when the request carries no valid circuit cookie."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from bai.coordinator.authz.decision import (
    ALLOW,
    Answer,
    bearer_token,
    client_allowed,
    deny,
    query_token,
    redeemed,
    token_problem,
)
from bai.coordinator.records import Circuit, Worker
from bai.coordinator.tokens import TokenRejected, cookie_valid, issue_cookie, verify_app_token
from bai.coordinator.xds.filters import (
    AUTHZ_PATH_PREFIX,
    CIRCUIT_HEADER,
    PEER_HEADER,
    cookie_name,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuthzRequest:
    path: str
    host: str
    circuit_id: str
    peer: str
    cookies: dict[str, str]
    authorization: str


@dataclass
class Authorizer:
    """Decides one request; the circuit lookups and token spending come from the coordinator."""

    find_by_id: Callable[[str], Circuit | None]
    find_by_host: Callable[[str], Circuit | None]
    find_worker: Callable[[str], Worker | None]
    spend_token: Callable[[str, uuid.UUID, datetime], Awaitable[bool]]
    secret: str
    cookie_key: bytes
    cookie_ttl: int

    async def check(self, req: AuthzRequest) -> Answer:
        circuit = self.find_by_id(req.circuit_id) if req.circuit_id else self.find_by_host(req.host)
        if circuit is None:
            return deny(404, "no app is served at this address")
        if not client_allowed(circuit, req.peer):
            return deny(403, f"client address {req.peer} may not use this app")
        if circuit.open_to_public:
            return ALLOW
        cookie = req.cookies.get(cookie_name(str(circuit.id)), "")
        if cookie and cookie_valid(self.cookie_key, cookie, str(circuit.id)):
            return ALLOW
        from_query = query_token(req.path)
        token = from_query or bearer_token(req.authorization)
        if not token:
            return deny(401, "this app needs a token: open it through `bai app` or the web UI")
        try:
            claims = verify_app_token(self.secret, token)
        except TokenRejected as exc:
            return deny(401, f"the app token is not valid ({exc})")
        problem = token_problem(circuit, claims)
        if problem:
            return deny(403, problem)
        # Inference clients send their endpoint token on every call; app tokens are once.
        if from_query or circuit.app_mode != "inference":
            expires = datetime.fromtimestamp(claims.expires_at, UTC)
            if not await self.spend_token(claims.jti, circuit.id, expires):
                return deny(401, "this app token was already used; ask for a new one")
        if not from_query:
            return ALLOW
        fresh = issue_cookie(self.cookie_key, str(circuit.id), claims.user_id, self.cookie_ttl)
        return redeemed(req.path, circuit, self.find_worker(circuit.worker), fresh, self.cookie_ttl)


def _request(request: web.Request) -> AuthzRequest:
    path = request.raw_path
    if path.startswith(AUTHZ_PATH_PREFIX):
        path = path[len(AUTHZ_PATH_PREFIX) :] or "/"
    return AuthzRequest(
        path=path,
        host=request.headers.get("host", ""),
        circuit_id=request.headers.get(CIRCUIT_HEADER, ""),
        peer=request.headers.get(PEER_HEADER, ""),
        cookies=dict(request.cookies),
        authorization=request.headers.get("authorization", ""),
    )


class AuthzServer:
    def __init__(self, authorizer: Authorizer, bind: str, port: int) -> None:
        self.authorizer = authorizer
        self.bind = bind
        self.port = port
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            answer = await self.authorizer.check(_request(request))
        except Exception:
            log.exception("ext_authz check failed")
            answer = deny(503, "the app proxy cannot check this request now; try again")
        log.debug(
            "authz",
            extra={"status": answer.status, "ms": round((time.perf_counter() - started) * 1e3, 2)},
        )
        return web.Response(status=answer.status, text=answer.body or None, headers=answer.headers)

    async def start(self) -> int:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.bind, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
