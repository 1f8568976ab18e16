"""Pure parts of the ext_authz answer: client addresses, token binding, the redirect."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from bai.coordinator.records import Circuit, Worker
from bai.coordinator.tokens import AppTokenClaims
from bai.coordinator.xds.filters import cookie_name

TOKEN_PARAM = "token"


@dataclass(frozen=True)
class Answer:
    """What Envoy relays: 200 lets the request through; anything else goes to the client."""

    status: int
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()


ALLOW = Answer(200)


def deny(status: int, why: str) -> Answer:
    return Answer(status, why + "\n", (("content-type", "text/plain; charset=utf-8"),))


def client_allowed(circuit: Circuit, peer: str) -> bool:
    if not circuit.allowed_client_ips:
        return True
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(cidr, strict=False) for cidr in circuit.allowed_client_ips
    )


def token_problem(circuit: Circuit, claims: AppTokenClaims) -> str | None:
    """Why a correctly signed, unexpired token still may not open this circuit."""
    if claims.circuit_id != str(circuit.id):
        return "this token is for another app"
    if circuit.user_id and claims.user_id != circuit.user_id:
        return "this token is for another user"
    return None


def query_token(path: str) -> str:
    for key, value in parse_qsl(urlsplit(path).query, keep_blank_values=True):
        if key == TOKEN_PARAM:
            return value
    return ""


def bearer_token(authorization: str) -> str:
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def without_token(path: str) -> str:
    parts = urlsplit(path)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != TOKEN_PARAM]
    return urlunsplit(("", "", parts.path or "/", urlencode(kept), parts.fragment))


def redeemed(path: str, circuit: Circuit, worker: Worker | None, cookie: str, ttl: int) -> Answer:
    """First visit with a good token: set the circuit's cookie and reload without the token."""
    attributes = f"Path=/; Max-Age={ttl}; HttpOnly; SameSite=Lax"
    if worker is not None and worker.use_tls:
        attributes += "; Secure"
    return Answer(
        302,
        "",
        (
            ("location", without_token(path)),
            ("set-cookie", f"{cookie_name(str(circuit.id))}={cookie}; {attributes}"),
            ("cache-control", "no-store"),
        ),
    )
