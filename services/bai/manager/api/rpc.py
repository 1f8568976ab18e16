"""The edge of every manager RPC: authenticate, run, audit, map errors, measure.

Servicer methods are written as `async def Method(self, request, call)` and
decorated with `@unary(...)`; the decorator turns them into grpc.aio handlers.
Business logic below never sees gRPC.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
import typing
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import grpc
from google.protobuf.message import Message
from redis.exceptions import RedisError
from sqlalchemy import CursorResult, Executable, Table, bindparam, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError

from bai.common.errors import (
    BaiError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    Unavailable,
)
from bai.common.grpc_errors import to_grpc_status
from bai.common.metrics import rpc_observer
from bai.common.shared_secret import text_metadata
from bai.common.text_fields import nul_fields
from bai.manager.auth.principal import Principal, Role
from bai.manager.context import ManagerContext
from bai.manager.db.audit import RequestLogRow

log = logging.getLogger(__name__)

# Writes to these change what some caller may do: the authenticator's cache
# must forget what it knows (see Authenticator.credentials_changed).
CREDENTIAL_ENTITIES = frozenset({"user", "keypair", "project", "domain"})

observe_rpc = rpc_observer("manager")

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)


@dataclass
class Call:
    """What a handler knows about the call it serves."""

    method: str
    principal: Principal
    ctx: ManagerContext
    metadata: dict[str, str]
    # Set by handlers of writes so the audit log names the object.
    entity_id: str = ""
    domain_name: str = ""


class Servicer(Protocol):
    SERVICE: str
    ctx: ManagerContext


Handler = Callable[[Any, Req, Call], Awaitable[Resp]]


def unary(
    *, audit: tuple[str, str] | None = None, public: bool = False, replays: bool = True
) -> Callable[[Handler[Req, Resp]], Callable[..., Awaitable[Resp]]]:
    """Wrap a handler. `audit=(entity_type, operation)` marks a write; a write's
    request_id replays the stored response, unless `replays=False` says the
    handler replays request_id itself (sparing two statements per call)."""

    def decorate(fn: Handler[Req, Resp]) -> Callable[..., Awaitable[Resp]]:
        @functools.wraps(fn)
        async def handler(
            self: Servicer, request: Req, context: grpc.aio.ServicerContext[Req, Resp]
        ) -> Resp:
            method = f"/{self.SERVICE}/{fn.__name__}"
            started = time.perf_counter()
            metadata = text_metadata(context)
            call: Call | None = None
            code = grpc.StatusCode.OK
            failure: BaseException | None = None
            try:
                principal = (
                    ANONYMOUS
                    if public
                    else await self.ctx.authenticator.authenticate(method, metadata, context.peer)
                )
                call = Call(method, principal, self.ctx, metadata)
                bad_text = nul_fields(request)
                if bad_text:
                    raise InvalidArgument(
                        [FieldViolation(f, "must not contain NUL characters") for f in bad_text]
                    )
                request_id = getattr(request, "request_id", "") if audit and replays else ""
                if request_id:
                    return await _idempotent(fn, self, request, call, request_id)
                return await fn(self, request, call)
            except SQLAlchemyError as exc:
                failure = Unavailable("database unavailable") if _is_connection_error(exc) else exc
            except RedisError:
                failure = Unavailable("session store unavailable")
            except OSError as exc:  # asyncpg raises connection failures unwrapped
                failure = Unavailable(f"a dependency is unreachable: {exc.strerror or exc}")
            except BaiError as exc:
                failure = exc
            except Exception as exc:
                failure = exc
            except asyncio.CancelledError as exc:
                # The caller went away; whether a write landed is unknown to them,
                # so it is not recorded as a success.
                failure = exc
                raise
            finally:
                elapsed = time.perf_counter() - started
                if isinstance(failure, asyncio.CancelledError):
                    status, code = None, grpc.StatusCode.CANCELLED
                else:
                    status = to_grpc_status(failure) if failure is not None else None
                    if status is not None:
                        code = status.code
                observe_rpc(method, code.name, elapsed)
                if audit and call is not None:
                    if failure is None and audit[0] in CREDENTIAL_ENTITIES:
                        await self.ctx.authenticator.credentials_changed()
                    await _write_audit(call, audit, failure, elapsed, request)
            assert status is not None
            await context.abort_with_status(status)
            raise AssertionError("unreachable")

        return handler

    return decorate


# Stands in for the caller of the few RPCs that need no credentials (Login).
ANONYMOUS = Principal(
    user_id=uuid.UUID(int=0), username="", email="", role=Role.USER, domain_name=""
)


def _is_connection_error(exc: SQLAlchemyError) -> bool:
    return getattr(exc, "connection_invalidated", False) or "connect" in type(exc).__name__.lower()


# Core statements built once, parameters apart, run on bare connections: every write
# RPC runs them, and SQLAlchemy then finds the compiled form without rebuilding its
# cache key or setting up an ORM session.
_REQUEST_LOG = cast(Table, RequestLogRow.__table__)
_STORED_REPLY = select(_REQUEST_LOG.c.request_digest, _REQUEST_LOG.c.response).where(
    _REQUEST_LOG.c.method == bindparam("method"),
    _REQUEST_LOG.c.request_id == bindparam("request_id"),
    _REQUEST_LOG.c.caller == bindparam("caller"),
)
_STORE_REPLY = insert(_REQUEST_LOG).on_conflict_do_nothing()


async def _run_alone(
    ctx: ManagerContext, statement: Executable, params: dict[str, Any]
) -> CursorResult[Any]:
    """One statement in autocommit: atomic on its own, without BEGIN and COMMIT round
    trips (results are buffered, so they outlive the connection)."""
    async with ctx.engine.connect() as db:
        await db.execution_options(isolation_level="AUTOCOMMIT")
        return await db.execute(statement, params)


async def _idempotent(
    fn: Handler[Req, Resp], servicer: Servicer, request: Req, call: Call, request_id: str
) -> Resp:
    """Replay the stored response of an earlier call with the same request_id.

    Entries belong to the caller as they were: with their role in the key, a
    caller demoted since gets no replay (and no stored secret); the call runs
    again and is authorized afresh.
    """
    digest = hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()
    caller = f"{call.principal.user_id}:{call.principal.role.value}"
    key = {"method": call.method, "request_id": request_id, "caller": caller}
    stored = (await _run_alone(call.ctx, _STORED_REPLY, key)).first()
    if stored is not None:
        if stored.request_digest != digest:
            raise FailedPrecondition(
                "request_id was used with different parameters", reason="REQUEST_ID_CONFLICT"
            )
        reply: Resp = typing.get_type_hints(fn)["return"]()
        reply.ParseFromString(stored.response)
        return reply
    reply = await fn(servicer, request, call)
    values = {**key, "request_digest": digest, "response": reply.SerializeToString()}
    await _run_alone(call.ctx, _STORE_REPLY, values)
    return reply


async def _write_audit(
    call: Call,
    audit: tuple[str, str],
    failure: BaseException | None,
    elapsed: float,
    request: Message,
) -> None:
    entity_type, operation = audit
    reason = ""
    if isinstance(failure, BaiError):
        reason = failure.reason
    elif isinstance(failure, asyncio.CancelledError):
        reason = "CANCELLED"
    elif failure is not None:
        reason = "INTERNAL"
    entry = dict(
        actor_user_id=call.principal.user_id,
        actor_access_key=call.principal.access_key,
        actor_email=call.principal.email,
        domain_name=call.domain_name or call.principal.domain_name,
        entity_type=entity_type,
        entity_id=call.entity_id[:128],
        operation=operation,
        method=call.method,
        status="failure" if failure is not None else "success",
        reason=reason,
        request_id=str(getattr(request, "request_id", ""))[:64],
        duration_ms=elapsed * 1000,
    )
    try:
        await call.ctx.audit.record(entry)
    except SQLAlchemyError:
        log.exception("could not write audit log entry", extra={"method": call.method})
