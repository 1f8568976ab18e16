"""A fake bai backend for SDK and CLI tests: a grpc (sync) server on its own threads.

It speaks the real contracts (generated servicer bases) but keeps state in memory.
It checks credentials like the manager does (keypair signature via
``bai.common.signing``, refused replayed nonces, bearer token) and answers
errors as ``google.rpc.Status`` with ``ErrorInfo`` (and ``BadRequest``). Tests can
make the next calls of a method fail with ``Fake.inject(method, code, times)``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from bai.api.manager.v1 import auth_pb2, auth_pb2_grpc, domain_pb2, domain_pb2_grpc
from bai.common import signing

ACCESS_KEY = "AKIATESTTESTTEST0001"
SECRET_KEY = "test-secret-key-0123456789-abcdefghijklm"
TOKEN = "token-0123456789"
USERNAME = "admin"
PASSWORD = "admin-password"


@dataclass
class Call:
    method: str
    metadata: dict[str, str]
    request: Any


def status(
    code: grpc.StatusCode,
    message: str,
    reason: str | None = None,
    violations: Sequence[tuple[str, str]] = (),
    metadata: dict[str, str] | None = None,
) -> grpc.Status:
    details = []
    if reason is not None:
        info = error_details_pb2.ErrorInfo(reason=reason, domain="bai", metadata=metadata or {})
        packed = any_pb2.Any()
        packed.Pack(info)
        details.append(packed)
    if violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad)
        details.append(packed)
    return rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message=message, details=details)
    )


class Abort(Exception):
    def __init__(self, st: grpc.Status) -> None:
        self.status = st


def fail(code: grpc.StatusCode, message: str, reason: str | None = None, **kw: Any) -> Abort:
    return Abort(status(code, message, reason if reason is not None else code.name, **kw))


def invalid(name: str, description: str) -> Abort:
    """INVALID_ARGUMENT/INVALID_FIELD with one field violation, as the manager answers."""
    return fail(
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid request",
        "INVALID_FIELD",
        violations=[(name, description)],
    )


def page_of(request: Any, found: list[Any]) -> tuple[list[Any], str]:
    """The page `request` (page_size, page_token: an offset) asks for, and the next token."""
    size = request.page_size or 100
    if not 0 <= size <= 1000:
        raise invalid("page_size", "must be 1-1000")
    if request.page_token and not request.page_token.isdigit():
        raise fail(grpc.StatusCode.INVALID_ARGUMENT, "bad page token", "INVALID_PAGE_TOKEN")
    start = int(request.page_token or 0)
    more = start + size < len(found)
    return found[start : start + size], str(start + size) if more else ""


@dataclass
class Fake:
    """Shared state of the fake servicers."""

    calls: list[Call] = field(default_factory=list)
    failures: dict[str, list[grpc.StatusCode]] = field(default_factory=dict)
    nonces: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    domains: dict[str, domain_pb2.Domain] = field(default_factory=dict)
    request_ids: dict[str, Any] = field(default_factory=dict)
    address: str = ""

    def inject(self, method: str, code: grpc.StatusCode, times: int = 1) -> None:
        self.failures.setdefault(method, []).extend([code] * times)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def enter(
        self, context: grpc.ServicerContext, request: Any, method: str, auth: bool = True
    ) -> None:
        """Record the call, inject a queued failure, then check credentials."""
        md = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        name = method.rsplit("/", 1)[1]
        with self.lock:
            self.calls.append(Call(name, md, request))
            queued = self.failures.get(name)
            code = queued.pop(0) if queued else None
        if code is not None:
            raise fail(code, "injected failure", reason="DEPENDENCY_UNAVAILABLE")
        if auth:
            self.authenticate(method, md)

    def authenticate(self, method: str, md: dict[str, str]) -> None:
        if signing.ACCESS_KEY in md:
            if md[signing.ACCESS_KEY] != ACCESS_KEY:
                raise fail(grpc.StatusCode.UNAUTHENTICATED, "unknown key", "UNKNOWN_ACCESS_KEY")
            ok = signing.signature_matches(
                SECRET_KEY,
                method,
                md.get(signing.TIMESTAMP, ""),
                md.get(signing.NONCE, ""),
                md.get(signing.SIGNATURE, ""),
            )
            if not ok:
                raise fail(grpc.StatusCode.UNAUTHENTICATED, "bad signature", "SIGNATURE_MISMATCH")
            with self.lock:
                if md[signing.NONCE] in self.nonces:
                    raise fail(grpc.StatusCode.UNAUTHENTICATED, "replayed", "NONCE_REPLAYED")
                self.nonces.add(md[signing.NONCE])
            return
        if md.get(signing.AUTHORIZATION) == f"Bearer {TOKEN}":
            return
        if signing.AUTHORIZATION in md:
            raise fail(grpc.StatusCode.UNAUTHENTICATED, "token invalid", "TOKEN_INVALID")
        raise fail(grpc.StatusCode.UNAUTHENTICATED, "no credentials", "CREDENTIALS_MISSING")


UNAUTHENTICATED_METHODS = {"Login"}


def handler(fn: Any) -> Any:
    """Record and authenticate the call (``Fake.enter``); turn ``Abort`` into its status.

    The servicer class names its service in ``SERVICE`` (the full name)."""

    def wrapped(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            method = f"/{self.SERVICE}/{fn.__name__}"
            self.fake.enter(context, request, method, fn.__name__ not in UNAUTHENTICATED_METHODS)
            return fn(self, request, context)
        except Abort as exc:
            context.abort_with_status(exc.status)

    return wrapped


IDENTITY = auth_pb2.WhoAmIResponse(
    user_id="u-1",
    username=USERNAME,
    email="admin@bai.local",
    role=auth_pb2.USER_ROLE_SUPERADMIN,
    domain_name="default",
)


class FakeAuth(auth_pb2_grpc.AuthServiceServicer):
    SERVICE = "bai.api.manager.v1.AuthService"

    def __init__(self, fake: Fake) -> None:
        self.fake = fake

    @handler
    def Login(self, request: auth_pb2.LoginRequest, context: Any) -> auth_pb2.LoginResponse:
        if (request.username, request.password) != (USERNAME, PASSWORD):
            raise fail(grpc.StatusCode.UNAUTHENTICATED, "login failed", "LOGIN_FAILED")
        return auth_pb2.LoginResponse(token=TOKEN, identity=IDENTITY)

    @handler
    def Logout(self, request: Any, context: Any) -> auth_pb2.LogoutResponse:
        return auth_pb2.LogoutResponse()

    @handler
    def WhoAmI(self, request: Any, context: Any) -> auth_pb2.WhoAmIResponse:
        md = self.fake.calls[-1].metadata
        return auth_pb2.WhoAmIResponse(
            **{**_fields(IDENTITY), "access_key": md.get(signing.ACCESS_KEY, "")}
        )


def _fields(msg: Any) -> dict[str, Any]:
    return {f.name: v for f, v in msg.ListFields()}


class FakeDomains(domain_pb2_grpc.DomainServiceServicer):
    """Domains in memory. GetDomain of "fail-<CODE>" fails with that code; "slow" sleeps 1 s."""

    SERVICE = "bai.api.manager.v1.DomainService"

    def __init__(self, fake: Fake) -> None:
        self.fake = fake

    @handler
    def CreateDomain(self, request: Any, context: Any) -> domain_pb2.CreateDomainResponse:
        if request.request_id and request.request_id in self.fake.request_ids:
            return self.fake.request_ids[request.request_id]
        name = request.domain.name
        if not name:
            raise fail(
                grpc.StatusCode.INVALID_ARGUMENT,
                "invalid request",
                "INVALID_FIELD",
                violations=[("domain.name", "must not be empty")],
            )
        if name in self.fake.domains:
            raise fail(grpc.StatusCode.ALREADY_EXISTS, f"domain {name} exists")
        domain = domain_pb2.Domain()
        domain.CopyFrom(request.domain)
        domain.is_active = True
        domain.created_at.FromSeconds(1_700_000_000)
        self.fake.domains[name] = domain
        response = domain_pb2.CreateDomainResponse(domain=domain)
        self.fake.request_ids[request.request_id] = response
        return response

    @handler
    def GetDomain(self, request: Any, context: Any) -> domain_pb2.GetDomainResponse:
        if request.name.startswith("fail-"):
            code = grpc.StatusCode[request.name.removeprefix("fail-")]
            raise fail(code, f"failing with {code.name}", metadata={"correlation_id": "c1"})
        if request.name == "plain-error":
            context.abort(grpc.StatusCode.INTERNAL, "no details here")
        if request.name == "slow":
            time.sleep(1.0)
        if request.name not in self.fake.domains:
            raise fail(grpc.StatusCode.NOT_FOUND, "domain not found")
        return domain_pb2.GetDomainResponse(domain=self.fake.domains[request.name])

    @handler
    def ListDomains(self, request: Any, context: Any) -> domain_pb2.ListDomainsResponse:
        names = sorted(self.fake.domains)
        start = int(request.page_token or 0)
        size = request.page_size or 100
        page = names[start : start + size]
        token = str(start + size) if start + size < len(names) else ""
        return domain_pb2.ListDomainsResponse(
            domains=[self.fake.domains[n] for n in page], next_page_token=token
        )

    @handler
    def UpdateDomain(self, request: Any, context: Any) -> domain_pb2.UpdateDomainResponse:
        current = self.fake.domains.get(request.domain.name)
        if current is None:
            raise fail(grpc.StatusCode.NOT_FOUND, "domain not found")
        for path in request.update_mask.paths:
            current.ClearField(path)  # type: ignore[arg-type]
            value = getattr(request.domain, path)
            if hasattr(value, "CopyFrom"):
                getattr(current, path).CopyFrom(value)
            elif hasattr(value, "extend"):
                getattr(current, path).extend(value)
            else:
                setattr(current, path, value)
        return domain_pb2.UpdateDomainResponse(domain=current)

    @handler
    def DeleteDomain(self, request: Any, context: Any) -> domain_pb2.DeleteDomainResponse:
        if request.name == "busy":
            raise fail(grpc.StatusCode.FAILED_PRECONDITION, "domain has projects", "IN_USE")
        if self.fake.domains.pop(request.name, None) is None:
            raise fail(grpc.StatusCode.NOT_FOUND, "domain not found")
        return domain_pb2.DeleteDomainResponse()


@contextmanager
def serve(fake: Fake, extra: Sequence[Any] = ()) -> Iterator[Fake]:
    """Run the fake servicers (plus ``extra`` (add_fn, servicer) pairs) on a free port."""
    server = grpc.server(ThreadPoolExecutor(max_workers=8))
    auth_pb2_grpc.add_AuthServiceServicer_to_server(FakeAuth(fake), server)
    domain_pb2_grpc.add_DomainServiceServicer_to_server(FakeDomains(fake), server)
    for add, servicer in extra:
        add(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    fake.address = f"127.0.0.1:{port}"
    try:
        yield fake
    finally:
        server.stop(None).wait()
