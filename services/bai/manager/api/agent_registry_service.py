"""AgentRegistryService.Connect: the agents' control stream (thin edge over
bai.manager.agents.registry and .ingest).

One reader task applies what the agent sends, in order; everything the
manager sends (registered, acks, pushed config) goes through the stream's
outbox so that only one coroutine writes to the call.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
from google.protobuf.duration_pb2 import Duration
from redis.exceptions import RedisError
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from bai.api.manager.v1 import agent_registry_pb2 as reg
from bai.api.manager.v1 import agent_registry_pb2_grpc as reg_grpc
from bai.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    Unavailable,
)
from bai.common.grpc_errors import to_grpc_status
from bai.common.metrics import rpc_observer
from bai.common.shared_secret import check_shared_secret, text_metadata
from bai.common.text_fields import nul_fields
from bai.manager.agents import ingest, registry, wire
from bai.manager.agents.orphans import OrphanReaper
from bai.manager.agents.streams import OpenStream
from bai.manager.api.convert import timestamp
from bai.manager.context import ManagerContext
from bai.manager.validation import Violations

log = logging.getLogger(__name__)
observe_rpc = rpc_observer("manager")

ADDR_PATTERN = re.compile(r"^[A-Za-z0-9.\-_\[\]:]{1,255}:[0-9]{1,5}$")
METHOD = "/bai.api.manager.v1.AgentRegistryService/Connect"
Context = grpc.aio.ServicerContext[reg.ConnectRequest, reg.ConnectResponse]


def validate_registration(r: reg.AgentRegistration) -> None:
    v = Violations()
    for path in nul_fields(r, "register."):
        v.add(path, "must not contain NUL characters")
    v.name("register.agent_id", r.agent_id)
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", r.boot_id):
        v.add("register.boot_id", "must be 1-64 characters of [A-Za-z0-9_-]")
    if not ADDR_PATTERN.match(r.addr):
        v.add("register.addr", "must be host:port")
    v.text("register.public_host", r.public_host, 256)
    v.text("register.region", r.region, 64)
    v.text("register.version", r.version, 64)
    if r.architecture not in ("", "x86_64", "aarch64"):
        v.add("register.architecture", "must be x86_64 or aarch64")
    v.slots("register.available_slots", r.available_slots.slots)
    v.raise_if_any()


def is_outage(exc: BaseException) -> bool:
    """A dependency is down (retry later), as opposed to a request it cannot store."""
    if isinstance(exc, OSError | RedisError | OperationalError | InterfaceError):
        return True
    return isinstance(exc, SQLAlchemyError) and bool(getattr(exc, "connection_invalidated", False))


def _domain_error(exc: BaseException) -> BaseException:
    if isinstance(exc, RedisError):
        return Unavailable("session store unavailable")
    if is_outage(exc):
        return Unavailable("database unavailable")
    return exc


def _seconds(value: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(int(value * 1e9))
    return duration


# Events applied in one transaction at most; more queued ones wait for the next burst.
BURST = 256
# Messages read off the stream ahead of the one being applied (then the agent waits).
INBOX = 4 * BURST
_EVENT_EXCLUDED = ("heartbeat", "shutdown", "kernel_snapshot", "register", None)


class _Connection:
    """What one registered agent's stream knows: its ids and the highest acked seq.

    One task reads the stream into `inbox`, another applies what is there, so
    that events waiting behind the one being applied are applied together.
    """

    def __init__(
        self, ctx: ManagerContext, registration: reg.AgentRegistration, stream: OpenStream
    ) -> None:
        self.ctx = ctx
        self.agent_id = registration.agent_id
        self.boot_id = registration.boot_id
        self.stream = stream
        self.acked = 0
        self.inbox: asyncio.Queue[reg.ConnectRequest | None] = asyncio.Queue(INBOX)
        self.orphans = OrphanReaper(ctx.sessions, ctx.agent_pool, self.agent_id)

    def ack(self) -> None:
        self.stream.outbox.put_nowait(reg.ConnectResponse(ack=reg.EventAck(seq=self.acked)))

    async def read(self, requests: AsyncIterator[reg.ConnectRequest]) -> None:
        """Queue every message until the agent half-closes; failures end the stream."""
        try:
            async for request in requests:
                await self.inbox.put(request)
            await self.inbox.put(None)
        except Exception as exc:
            self.stream.outbox.put_nowait(exc)

    async def apply(self) -> None:
        """Apply queued messages in order, events in bursts; failures end the stream."""
        try:
            while (first := await self.inbox.get()) is not None:
                ready: list[reg.ConnectRequest | None] = [first]
                while len(ready) < BURST and not self.inbox.empty():
                    ready.append(self.inbox.get_nowait())
                if not await self.apply_ready(ready):
                    break
            self.stream.outbox.put_nowait(None)
        except Exception as exc:
            self.stream.outbox.put_nowait(exc)

    async def apply_ready(self, ready: list[reg.ConnectRequest | None]) -> bool:
        """Apply in order; False when the agent half-closed (None) among them."""
        burst: list[reg.ConnectRequest] = []
        for request in ready:
            if request is not None and is_plain_event(request):
                burst.append(request)
                continue
            await self.handle_events(burst)
            burst = []
            if request is None:
                return False
            await self.handle(request)
        await self.handle_events(burst)
        return True

    async def handle(self, request: reg.ConnectRequest) -> None:
        ctx, now = self.ctx, datetime.now(UTC)
        which = request.WhichOneof("payload")
        bad_text = nul_fields(request)
        if bad_text and which not in _EVENT_EXCLUDED:
            # An event no database can store: drop it (acked) rather than have it
            # re-sent forever.
            log.warning(
                "agent %s: event %d has NUL characters; dropped", self.agent_id, request.seq
            )
            if request.seq > self.acked:
                await ingest.skip_event(ctx.sessions, self.agent_id, self.boot_id, request.seq, now)
                self.acked = request.seq
            self.ack()
            return
        if bad_text:
            raise InvalidArgument.field(bad_text[0], "must not contain NUL characters")
        if which == "heartbeat":
            hb = request.heartbeat
            plugins = wire.compute_plugins_json(hb.compute_plugins) or None
            ours = await registry.heartbeat(
                ctx.sessions,
                self.agent_id,
                self.boot_id,
                ctx.agent_streams.manager_id,
                wire.slots("heartbeat.available_slots", hb.available_slots.slots),
                plugins,
                now,
            )
            if not ours:
                raise PermissionDenied(
                    "this agent was marked lost or registered elsewhere: register again",
                    reason="AGENT_REJECTED",
                    metadata={"agent_id": self.agent_id},
                )
            # Also the agent's sign of life from the manager (heartbeat_timeout).
            self.ack()
            self.orphans.check(hb.kernel_ids)
        elif which == "shutdown":
            await registry.shutdown(ctx.sessions, self.agent_id, self.boot_id, now)
        elif which == "kernel_snapshot":
            snap = request.kernel_snapshot
            unknown = await registry.apply_snapshot(
                ctx.sessions,
                ctx.redis,
                self.agent_id,
                [wire.reported_kernel(k) for k in snap.kernels],
                [wire.installed_image(i) for i in snap.images],
                wire.slots("kernel_snapshot.available_slots", snap.available_slots.slots),
                now,
            )
            if unknown:
                log.warning(
                    "agent %s runs kernels the manager does not know: %s", self.agent_id, unknown
                )
        elif which == "register" or which is None:
            raise FailedPrecondition(
                "register is the first message only", reason="STREAM_OUT_OF_ORDER"
            )
        else:
            await self.handle_event(request, now)
            self.orphans.check(coming_up([request]))

    async def handle_events(self, requests: list[reg.ConnectRequest]) -> None:
        """A burst of well-formed events in one transaction (with other streams'
        bursts); one by one should it fail."""
        if not requests:
            return
        fresh = [r for r in requests if r.seq > self.acked]
        events = [wire.agent_event(r) for r in fresh]
        not_live = None
        if (
            fresh
            and all(r.seq != 0 for r in requests)
            and all(a.seq < b.seq for a, b in itertools.pairwise(fresh))
            and None not in events
        ):
            not_live = await self.apply_burst(
                [(r.seq, e) for r, e in zip(fresh, events, strict=True) if e is not None]
            )
        if not_live is None:
            for request in requests:
                await self.handle(request)
            return
        # Kernels the agent says are coming up that the manager has ended or never
        # placed there: the agent is told to remove them.
        self.orphans.destroy(k for k in coming_up(fresh) if k in not_live)
        self.acked = fresh[-1].seq
        self.ack()

    async def apply_burst(self, events: list[tuple[int, ingest.AgentEvent]]) -> set[str] | None:
        """The burst's not-live kernel ids once applied; None when it was not applied."""
        burst = ingest.Burst(self.agent_id, self.boot_id, events)
        try:
            return await self.ctx.event_batcher.apply(burst)
        except Exception as exc:
            if is_outage(exc):
                raise
            log.info("agent %s: a burst of %d events failed: %s", self.agent_id, len(events), exc)
            return None

    async def handle_event(self, request: reg.ConnectRequest, now: datetime) -> None:
        seq = request.seq
        if seq == 0:
            raise InvalidArgument.field("seq", "events carry seq 1, 2, 3, ...")
        if seq <= self.acked:
            self.ack()
            return
        ctx = self.ctx
        try:
            event = wire.agent_event(request)
            assert event is not None
            await ingest.apply_event(
                ctx.sessions, ctx.redis, self.agent_id, self.boot_id, seq, event, now
            )
        except Exception as exc:
            if is_outage(exc):
                raise
            # A poison event must not block every later one: log it and move on.
            log.exception("agent %s: event %d could not be applied", self.agent_id, seq)
            await ingest.skip_event(ctx.sessions, self.agent_id, self.boot_id, seq, now)
        self.acked = seq
        self.ack()


_COMING_UP = (
    reg.KERNEL_EVENT_TYPE_PREPARING,
    reg.KERNEL_EVENT_TYPE_PULLING,
    reg.KERNEL_EVENT_TYPE_CREATING,
    reg.KERNEL_EVENT_TYPE_STARTED,
    reg.KERNEL_EVENT_TYPE_RESTARTED,
)


def coming_up(requests: list[reg.ConnectRequest]) -> list[str]:
    """Kernels these events say are starting or running on the agent."""
    return [
        r.kernel_event.kernel_id
        for r in requests
        if r.WhichOneof("payload") == "kernel_event" and r.kernel_event.type in _COMING_UP
    ]


def is_plain_event(request: reg.ConnectRequest) -> bool:
    """An event (seq'd payload) without NUL characters: may join a burst."""
    return request.WhichOneof("payload") not in _EVENT_EXCLUDED and not nul_fields(request)


class AgentRegistryServicer(reg_grpc.AgentRegistryServiceServicer):
    SERVICE = "bai.api.manager.v1.AgentRegistryService"

    def __init__(self, ctx: ManagerContext) -> None:
        self.ctx = ctx

    def _accepted(self, registered: registry.Registered) -> reg.ConnectResponse:
        config = self.ctx.config.agent
        return reg.ConnectResponse(
            registered=reg.RegistrationAccepted(
                heartbeat_interval=_seconds(config.heartbeat_interval),
                heartbeat_timeout=_seconds(config.agent_lost_timeout),
                manager_id=self.ctx.agent_streams.manager_id,
                server_time=timestamp(datetime.now(UTC)),
                last_acked_seq=registered.last_acked_seq,
                scaling_group=registered.scaling_group,
                unknown_kernel_ids=list(registered.unknown_kernel_ids),
            )
        )

    async def Connect(
        self, request_iterator: AsyncIterator[reg.ConnectRequest], context: Context
    ) -> AsyncIterator[reg.ConnectResponse]:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        stream: OpenStream | None = None
        reader: asyncio.Task[None] | None = None
        applier: asyncio.Task[None] | None = None
        status: grpc.Status | None = None
        try:
            metadata = text_metadata(context)
            # The token is checked after the first message is read: a stream
            # aborted before it reads lets the client's in-flight send fail,
            # and grpc then reports INTERNAL to the agent instead of our status.
            first = await anext(aiter(request_iterator), None)
            check_shared_secret(self.ctx.config.agent.internal_token, metadata)
            if first is None:
                return
            if first.WhichOneof("payload") != "register":
                raise FailedPrecondition("send register first", reason="STREAM_OUT_OF_ORDER")
            validate_registration(first.register)
            stream = self.ctx.agent_streams.attach(first.register.agent_id, first.register.addr)
            registered = await registry.register(
                self.ctx.sessions,
                self.ctx.redis,
                wire.registration(first.register),
                self.ctx.agent_streams.manager_id,
                datetime.now(UTC),
            )
            log.info("agent %s registered (%s)", first.register.agent_id, registered.status)
            yield self._accepted(registered)
            connection = _Connection(self.ctx, first.register, stream)
            connection.acked = registered.last_acked_seq
            reader = asyncio.create_task(connection.read(request_iterator))
            applier = asyncio.create_task(connection.apply())
            while (item := await stream.outbox.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            # Anything but a BaiError is logged with a correlation id by to_grpc_status.
            status = to_grpc_status(_domain_error(exc))
            code = status.code
        finally:
            for task in (reader, applier):
                if task is not None:
                    task.cancel()
            if stream is not None:
                self.ctx.agent_streams.detach(stream)
            observe_rpc(METHOD, code.name, time.perf_counter() - started)
        if status is not None:
            await context.abort_with_status(status)
