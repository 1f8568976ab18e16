"""ADS: the coordinator as each worker Envoy's xDS server over gRPC (v3, state of the world).

A worker's Envoy connects with node.id set to the worker's authority and asks
for clusters and listeners; it gets the worker's whole set, and a new version
whenever a circuit of that worker changes: clusters first, then listeners, so
that a new listener finds its cluster. A version is the digest of the
resources, so a restarted coordinator (which rebuilds its state before it
serves) offers Envoy what it already runs and nothing drains; meanwhile Envoy
keeps serving its last accepted configuration. A NACK is logged and not
retried until the resources change.

Each change of a worker's resources is a new generation of its snapshot. A
stream remembers, per type, through which generation Envoy has ACKed what it
was sent, so that a caller can wait (`Snapshots.applied`) until every Envoy of
the worker runs a change: CreateCircuit answers once the circuit's port serves.

Resources are rendered as JSON dicts (`resources.py`, shared with filesystem
xDS) and packed into `Any` here, which needs every type they name imported.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2  # noqa: F401 - registers the types below
from envoy.config.listener.v3 import listener_pb2  # noqa: F401
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2  # noqa: F401
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2  # noqa: F401
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2  # noqa: F401
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import (  # noqa: F401
    http_connection_manager_pb2,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as net_rbac_pb2  # noqa: F401
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2  # noqa: F401
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2, json_format

from bai.common.errors import BaiError
from bai.common.grpc_errors import to_grpc_status
from bai.common.shared_secret import check_shared_secret, text_metadata

log = logging.getLogger(__name__)

CLUSTERS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LISTENERS = "type.googleapis.com/envoy.config.listener.v3.Listener"
# Push order: a listener must never arrive before its cluster.
ORDER = (CLUSTERS, LISTENERS)
SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
_CHANGED = object()


def pack(resource: dict[str, Any]) -> any_pb2.Any:
    packed = any_pb2.Any()
    json_format.ParseDict(resource, packed)
    return packed


def _digest(items: list[dict[str, Any]]) -> str:
    text = json.dumps(items, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Snapshot:
    """One worker's resources per type URL, with a version per type; `generation` counts
    the worker's changes (versions name content, generations order changes)."""

    resources: dict[str, list[any_pb2.Any]]
    versions: dict[str, str]
    generation: int = 0

    @classmethod
    def of(
        cls,
        listeners: list[dict[str, Any]],
        clusters: list[dict[str, Any]],
        versions: dict[str, str] | None = None,
        generation: int = 0,
    ) -> Snapshot:
        rendered = {CLUSTERS: clusters, LISTENERS: listeners}
        return cls(
            resources={t: [pack(r) for r in items] for t, items in rendered.items()},
            versions=versions or _versions(listeners, clusters),
            generation=generation,
        )


def _versions(listeners: list[dict[str, Any]], clusters: list[dict[str, Any]]) -> dict[str, str]:
    return {CLUSTERS: _digest(clusters), LISTENERS: _digest(listeners)}


EMPTY = Snapshot.of([], [])


class Applied(enum.Enum):
    """How waiting for a worker's Envoys to run a generation ended."""

    APPLIED = "applied"
    REJECTED = "rejected"
    TIMED_OUT = "timed out"
    # No Envoy of the worker is on ADS (files mode, or its Envoy is down): nothing to wait for.
    NO_STREAM = "no stream"


@dataclass(eq=False)
class _Stream:
    """What one Envoy has asked for, been sent and ACKed."""

    queue: asyncio.Queue[object] = field(default_factory=asyncio.Queue)
    authority: str = ""
    subscribed: set[str] = field(default_factory=set)
    sent: dict[str, str] = field(default_factory=dict)  # type URL -> version
    nonces: dict[str, str] = field(default_factory=dict)  # type URL -> last nonce
    # The newest generation whose version of a type is the one last sent.
    sent_through: dict[str, int] = field(default_factory=dict)
    # The newest generation Envoy runs of a type: what it ACKed, still current then.
    acked_through: dict[str, int] = field(default_factory=dict)
    # The version last sent of a type, once Envoy NACKed it.
    rejected: dict[str, str] = field(default_factory=dict)
    counter: int = 0

    def take(self, request: discovery_pb2.DiscoveryRequest) -> None:
        type_url = request.type_url
        if type_url not in ORDER:
            return
        if request.response_nonce and request.response_nonce != self.nonces.get(type_url):
            return  # a reply to an older response; the newer one is in flight
        self.subscribed.add(type_url)
        if not request.response_nonce:
            return  # a subscription (or a new stream), not an answer
        if request.error_detail.code:
            self.rejected[type_url] = self.sent.get(type_url, "")
            log.warning(
                "worker %s rejected %s version %s: %s",
                self.authority,
                type_url.rsplit(".", 1)[-1],
                self.sent.get(type_url, ""),
                request.error_detail.message,
            )
        elif request.version_info == self.sent.get(type_url):
            self.acked_through[type_url] = self.sent_through[type_url]

    def due(self, snapshot: Snapshot) -> list[discovery_pb2.DiscoveryResponse]:
        replies = []
        for type_url in ORDER:
            if type_url not in self.subscribed:
                continue
            version = snapshot.versions[type_url]
            if self.sent.get(type_url) == version:
                # Unchanged by this generation: what Envoy ACKed covers it too.
                if self.acked_through.get(type_url, -1) == self.sent_through[type_url]:
                    self.acked_through[type_url] = snapshot.generation
                self.sent_through[type_url] = snapshot.generation
                continue
            self.counter += 1
            nonce = str(self.counter)
            self.sent[type_url], self.nonces[type_url] = version, nonce
            self.sent_through[type_url] = snapshot.generation
            replies.append(
                discovery_pb2.DiscoveryResponse(
                    version_info=version,
                    resources=snapshot.resources[type_url],
                    type_url=type_url,
                    nonce=nonce,
                )
            )
        return replies

    def verdict(self, generation: int) -> Applied | None:
        """APPLIED once Envoy runs `generation` (or later) of every type, REJECTED when it
        NACKed a version that carries it; None while that is still open."""
        for type_url in ORDER:
            if self.acked_through.get(type_url, -1) >= generation:
                continue
            if (
                self.sent_through.get(type_url, -1) >= generation
                and self.rejected.get(type_url) == self.sent[type_url]
            ):
                return Applied.REJECTED
            return None
        return Applied.APPLIED


@dataclass
class Snapshots:
    """The latest snapshot of each worker, its open streams (woken when it changes), and
    the callers waiting for those streams' ACKs."""

    current: dict[str, Snapshot] = field(default_factory=dict)
    _streams: dict[str, set[_Stream]] = field(default_factory=dict)
    _waiters: set[asyncio.Future[None]] = field(default_factory=set)
    _open: set[_Stream] = field(default_factory=set)
    closed: bool = False

    def set(
        self, authority: str, listeners: list[dict[str, Any]], clusters: list[dict[str, Any]]
    ) -> int:
        """The generation that holds these resources (the current one when unchanged)."""
        # Every change of any circuit lands here: packing is skipped when nothing changed.
        versions = _versions(listeners, clusters)
        known = self.current.get(authority)
        if known is not None and known.versions == versions:
            return known.generation
        generation = (known.generation if known else 0) + 1
        self.current[authority] = Snapshot.of(listeners, clusters, versions, generation)
        for stream in self._streams.get(authority, ()):
            stream.queue.put_nowait(_CHANGED)
        return generation

    def get(self, authority: str) -> Snapshot:
        return self.current.get(authority, EMPTY)

    def opened(self, stream: _Stream) -> None:
        self._open.add(stream)

    def follow(self, stream: _Stream) -> None:
        self._streams.setdefault(stream.authority, set()).add(stream)

    def unfollow(self, stream: _Stream) -> None:
        self._open.discard(stream)
        self._streams.get(stream.authority, set()).discard(stream)
        self.progressed()

    def close(self) -> None:
        """End every stream, now and from now on (the coordinator is stopping): otherwise
        each open stream holds the server's shutdown for its whole grace period. Envoy
        keeps serving what it has and reconnects to the next coordinator."""
        self.closed = True
        for stream in self._open:
            stream.queue.put_nowait(None)

    def progressed(self) -> None:
        """A stream sent, got an answer or went: waiters look again."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def applied(self, authority: str, generation: int, wait_seconds: float) -> Applied:
        """Wait until every Envoy of `authority` on ADS has ACKed `generation` or a later
        one. Does not wait when none is connected; gives up after `wait_seconds`."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(wait_seconds):
                while (outcome := self._outcome(authority, generation)) is None:
                    waiter = loop.create_future()
                    self._waiters.add(waiter)
                    try:
                        await waiter
                    finally:
                        self._waiters.discard(waiter)
                return outcome
        except TimeoutError:
            return Applied.TIMED_OUT

    def _outcome(self, authority: str, generation: int) -> Applied | None:
        streams = self._streams.get(authority)
        if not streams:
            return Applied.NO_STREAM
        verdicts = {stream.verdict(generation) for stream in streams}
        if Applied.REJECTED in verdicts:
            return Applied.REJECTED
        return Applied.APPLIED if verdicts == {Applied.APPLIED} else None


class AdsServicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    """Envoy shows the internal token like every other caller: the resources hold the
    cookie key, and whoever reads them could forge app cookies."""

    def __init__(self, snapshots: Snapshots, internal_token: str) -> None:
        self.snapshots = snapshots
        self.internal_token = internal_token

    async def StreamAggregatedResources(
        self, request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest], context: Any
    ) -> AsyncIterator[discovery_pb2.DiscoveryResponse]:
        try:
            check_shared_secret(self.internal_token, text_metadata(context))
        except BaiError as exc:
            await context.abort_with_status(to_grpc_status(exc))
        if self.snapshots.closed:
            return
        stream = _Stream()
        self.snapshots.opened(stream)
        reader = asyncio.create_task(_read(request_iterator, stream.queue))
        try:
            while (item := await stream.queue.get()) is not None:
                if isinstance(item, discovery_pb2.DiscoveryRequest):
                    if not stream.authority and item.node.id:
                        stream.authority = item.node.id
                        self.snapshots.follow(stream)
                    stream.take(item)
                for reply in stream.due(self.snapshots.get(stream.authority)):
                    yield reply
                self.snapshots.progressed()
        finally:
            reader.cancel()
            self.snapshots.unfollow(stream)


async def _read(
    requests: AsyncIterator[discovery_pb2.DiscoveryRequest], queue: asyncio.Queue[object]
) -> None:
    try:
        async for request in requests:
            queue.put_nowait(request)
    finally:
        queue.put_nowait(None)
