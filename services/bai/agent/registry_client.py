"""The agent's control stream to the manager (AgentRegistryService.Connect).

One stream at a time: register, then heartbeats every interval and the
outbox's events in seq order, while the manager's acks trim the outbox and
its config/resync commands are answered. A broken or silent stream is
replaced with jittered backoff (1 s to 30 s); unacked events are re-sent on
the next stream. On shutdown the agent says so (kernels keep running) and
half-closes.
"""

from __future__ import annotations

import asyncio
import logging
import random
from contextlib import suppress
from typing import Any

import grpc

from bai.agent.context import VERSION, AgentContext
from bai.agent.kernels.lifecycle import KernelManager
from bai.agent.node import hardware_info, plugin_info, resource_slots, slot_types
from bai.agent.runtime.base import RuntimeFailure
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import session_pb2
from bai.api.manager.v1 import agent_registry_pb2 as reg
from bai.api.manager.v1 import agent_registry_pb2_grpc
from bai.common.shared_secret import INTERNAL_TOKEN_HEADER

log = logging.getLogger(__name__)

REGISTER_TIMEOUT = 30.0


class StreamLost(Exception):
    """The manager closed the stream, refused us, or went silent."""


class RegistryClient:
    def __init__(
        self,
        ctx: AgentContext,
        km: KernelManager,
        grpc_port: int,
        *,
        backoff_min: float = 1.0,
        backoff_max: float = 30.0,
    ) -> None:
        self.ctx = ctx
        self.km = km
        self.grpc_port = grpc_port
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.interval = ctx.config.heartbeat_interval_seconds
        # Until RegistrationAccepted says how long silence may last: never dead.
        self.silence_limit: float | None = None
        self.scaling_group = ctx.config.scaling_group
        self.auto_terminate_abusing_kernel = False
        self.registrations = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._call: Any = None
        self._write_lock = asyncio.Lock()
        self._plugin_states: dict[str, str] = {}

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self, reason: str = "agent shutting down", wait: float = 3.0) -> None:
        """Say goodbye (kernels keep running), half-close, and stop reconnecting."""
        self._stopping.set()
        call = self._call
        if call is not None:
            shutdown = reg.AgentShutdown(reason=reason, kernels_left_running=True)
            shutdown.time.GetCurrentTime()
            with suppress(grpc.RpcError, asyncio.InvalidStateError, RuntimeError):
                await self._write(call, reg.ConnectRequest(shutdown=shutdown))
                await call.done_writing()
        if self._task is not None:
            with suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), wait)
            self._task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        delay = self.backoff_min
        while not self._stopping.is_set():
            registered_before = self.registrations
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except (grpc.RpcError, StreamLost, TimeoutError, OSError) as exc:
                log.warning("manager stream lost", extra={"error": str(exc) or repr(exc)})
            except Exception:
                log.exception("manager stream failed")
            finally:
                self.ctx.manager_connected = False
                self._call = None
            if self._stopping.is_set():
                return
            if self.registrations > registered_before:
                delay = self.backoff_min
            pause = min(delay * random.uniform(1.0, 1.5), self.backoff_max)
            delay = min(delay * 2, self.backoff_max)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), pause)

    def _metadata(self) -> list[tuple[str, str]]:
        token = self.ctx.config.internal_token
        return [(INTERNAL_TOKEN_HEADER, token)] if token else []

    async def _write(self, call: Any, request: reg.ConnectRequest) -> None:
        async with self._write_lock:
            await call.write(request)

    async def _read(self, call: Any, limit: float | None) -> reg.ConnectResponse:
        reply = await asyncio.wait_for(call.read(), limit)
        if reply is grpc.aio.EOF:
            raise StreamLost("the manager closed the stream")
        return reply  # type: ignore[no-any-return]

    async def _session(self) -> None:
        async with grpc.aio.insecure_channel(self.ctx.config.manager_addr) as channel:
            stub: Any = agent_registry_pb2_grpc.AgentRegistryServiceStub(channel)
            call = stub.Connect(metadata=self._metadata())
            self._call = call
            await self._write(call, reg.ConnectRequest(register=await self.registration()))
            first = await self._read(call, REGISTER_TIMEOUT)
            if first.WhichOneof("payload") != "registered":
                raise StreamLost(f"expected registered, got {first.WhichOneof('payload')}")
            self._accept(first.registered)
            work = [
                asyncio.create_task(self._receive(call)),
                asyncio.create_task(self._heartbeats(call)),
                asyncio.create_task(self._send_events(call, first.registered.last_acked_seq)),
            ]
            try:
                done, _ = await asyncio.wait(work, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in work:
                    task.cancel()
                for task in work:
                    with suppress(asyncio.CancelledError):
                        await task
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]

    def _accept(self, accepted: reg.RegistrationAccepted) -> None:
        self.registrations += 1
        self.ctx.manager_connected = True
        if accepted.HasField("heartbeat_interval"):
            self.interval = (
                accepted.heartbeat_interval.ToTimedelta().total_seconds() or self.interval
            )
        if accepted.HasField("heartbeat_timeout"):
            self.silence_limit = accepted.heartbeat_timeout.ToTimedelta().total_seconds() or None
        if accepted.scaling_group:
            self.scaling_group = accepted.scaling_group
        self.ctx.outbox.ack(accepted.last_acked_seq)
        reason = session_pb2.LIFECYCLE_REASON_NOT_FOUND_IN_MANAGER
        for kernel_id in accepted.unknown_kernel_ids:
            self.km.spawn(self.km.destroy(kernel_id, reason, False, None))
        log.info(
            "registered with the manager",
            extra={"manager_id": accepted.manager_id, "last_acked_seq": accepted.last_acked_seq},
        )

    async def _receive(self, call: Any) -> None:
        while True:
            reply = await self._read(call, self.silence_limit)
            kind = reply.WhichOneof("payload")
            if kind == "ack":
                self.ctx.outbox.ack(reply.ack.seq)
            elif kind == "config":
                self._configure(reply.config)
            elif kind == "resync":
                await self._write(call, reg.ConnectRequest(kernel_snapshot=await self.snapshot()))

    def _configure(self, update: reg.AgentConfigUpdate) -> None:
        if update.HasField("heartbeat_interval"):
            self.interval = update.heartbeat_interval.ToTimedelta().total_seconds() or self.interval
        if update.scaling_group:
            self.scaling_group = update.scaling_group
        self.auto_terminate_abusing_kernel = update.auto_terminate_abusing_kernel

    async def _heartbeats(self, call: Any) -> None:
        while True:
            await self._write(call, reg.ConnectRequest(heartbeat=self.heartbeat()))
            await asyncio.sleep(self.interval)

    async def _send_events(self, call: Any, sent: int) -> None:
        outbox = self.ctx.outbox
        while True:
            for event in outbox.unacked(after=sent):
                await self._write(call, event)
                sent = event.seq
            await outbox.wait_beyond(sent)

    async def _images(self) -> list[agent_pb2.InstalledImage]:
        try:
            return await self.km.images.installed()
        except RuntimeFailure as exc:
            log.warning("cannot list images", extra={"error": str(exc)})
            return []

    def _kernels(self) -> list[agent_pb2.Kernel]:
        return [r.to_proto(self.km.kernel_host) for r in self.km.live()]

    async def registration(self) -> reg.AgentRegistration:
        ctx = self.ctx
        hardware = await hardware_info(ctx)
        registration = reg.AgentRegistration(
            agent_id=ctx.agent_id,
            boot_id=ctx.boot_id,
            addr=f"{ctx.config.public_host}:{self.grpc_port}",
            public_host=ctx.config.public_host,
            region=ctx.config.region,
            scaling_group=self.scaling_group,
            architecture=hardware.architecture,
            version=VERSION,
            available_slots=resource_slots(ctx.allocator.capacity()),
            slot_types=slot_types(ctx.plugins),
            hardware=hardware,
            kernels=self._kernels(),
            images=await self._images(),
            auto_terminate_abusing_kernel=self.auto_terminate_abusing_kernel,
        )
        registration.started_at.FromDatetime(ctx.started_at)
        self._plugin_states = {p.key: p.status().state for p in ctx.plugins}
        return registration

    def heartbeat(self) -> reg.AgentHeartbeat:
        ctx = self.ctx
        beat = reg.AgentHeartbeat(
            available_slots=resource_slots(ctx.allocator.capacity()),
            occupied_slots=resource_slots(ctx.allocator.occupied()),
            kernel_ids=sorted(r.kernel_id for r in self.km.live()),
        )
        beat.time.GetCurrentTime()
        for plugin in ctx.plugins:
            state = plugin.status().state
            if self._plugin_states.get(plugin.key) != state:
                self._plugin_states[plugin.key] = state
                beat.compute_plugins.append(plugin_info(plugin))
        return beat

    async def snapshot(self) -> reg.KernelSnapshot:
        return reg.KernelSnapshot(
            kernels=self._kernels(),
            images=await self._images(),
            available_slots=resource_slots(self.ctx.allocator.capacity()),
        )
