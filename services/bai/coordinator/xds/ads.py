"""ADS: the coordinator as each worker Envoy's xDS server over gRPC (v3, state of the world).

A worker's Envoy connects with node.id set to the worker's authority and asks
for clusters and listeners; it gets the worker's whole set, and a new version
whenever a circuit of that worker changes: clusters first, then listeners, so
that a new listener finds its cluster. A version is the digest of the
resources, so a restarted coordinator (which rebuilds its state before it
serves) offers Envoy what it already runs and nothing drains; meanwhile Envoy
keeps serving its last accepted configuration. A NACK is logged and not
retried until the resources change.

Resources are rendered as JSON dicts (`resources.py`, shared with filesystem
xDS) and packed into `Any` here, which needs every type they name imported.
"""

from __future__ import annotations

import asyncio
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
    """One worker's resources per type URL, with a version per type."""

    resources: dict[str, list[any_pb2.Any]]
    versions: dict[str, str]

    @classmethod
    def of(
        cls,
        listeners: list[dict[str, Any]],
        clusters: list[dict[str, Any]],
        versions: dict[str, str] | None = None,
    ) -> Snapshot:
        rendered = {CLUSTERS: clusters, LISTENERS: listeners}
        return cls(
            resources={t: [pack(r) for r in items] for t, items in rendered.items()},
            versions=versions or _versions(listeners, clusters),
        )


def _versions(listeners: list[dict[str, Any]], clusters: list[dict[str, Any]]) -> dict[str, str]:
    return {CLUSTERS: _digest(clusters), LISTENERS: _digest(listeners)}


EMPTY = Snapshot.of([], [])


@dataclass
class Snapshots:
    """The latest snapshot of each worker, and the open streams to wake when it changes."""

    current: dict[str, Snapshot] = field(default_factory=dict)
    _streams: dict[str, set[asyncio.Queue[object]]] = field(default_factory=dict)

    def set(
        self, authority: str, listeners: list[dict[str, Any]], clusters: list[dict[str, Any]]
    ) -> None:
        # Every change of any circuit lands here: packing is skipped when nothing changed.
        versions = _versions(listeners, clusters)
        known = self.current.get(authority)
        if known is not None and known.versions == versions:
            return
        self.current[authority] = Snapshot.of(listeners, clusters, versions)
        for queue in self._streams.get(authority, ()):
            queue.put_nowait(_CHANGED)

    def get(self, authority: str) -> Snapshot:
        return self.current.get(authority, EMPTY)

    def follow(self, authority: str, queue: asyncio.Queue[object]) -> None:
        self._streams.setdefault(authority, set()).add(queue)

    def unfollow(self, authority: str, queue: asyncio.Queue[object]) -> None:
        self._streams.get(authority, set()).discard(queue)


@dataclass
class _Stream:
    """What one Envoy has asked for and been sent."""

    authority: str = ""
    subscribed: set[str] = field(default_factory=set)
    sent: dict[str, str] = field(default_factory=dict)  # type URL -> version
    nonces: dict[str, str] = field(default_factory=dict)  # type URL -> last nonce
    counter: int = 0

    def take(self, request: discovery_pb2.DiscoveryRequest) -> None:
        if request.type_url not in ORDER:
            return
        if request.response_nonce and request.response_nonce != self.nonces.get(request.type_url):
            return  # a reply to an older response; the newer one is in flight
        if request.error_detail.code:
            log.warning(
                "worker %s rejected %s version %s: %s",
                self.authority,
                request.type_url.rsplit(".", 1)[-1],
                self.sent.get(request.type_url, ""),
                request.error_detail.message,
            )
        self.subscribed.add(request.type_url)

    def due(self, snapshot: Snapshot) -> list[discovery_pb2.DiscoveryResponse]:
        replies = []
        for type_url in ORDER:
            version = snapshot.versions[type_url]
            if type_url in self.subscribed and self.sent.get(type_url) != version:
                self.counter += 1
                nonce = str(self.counter)
                self.sent[type_url], self.nonces[type_url] = version, nonce
                replies.append(
                    discovery_pb2.DiscoveryResponse(
                        version_info=version,
                        resources=snapshot.resources[type_url],
                        type_url=type_url,
                        nonce=nonce,
                    )
                )
        return replies


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
        queue: asyncio.Queue[object] = asyncio.Queue()
        reader = asyncio.create_task(_read(request_iterator, queue))
        stream = _Stream()
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, discovery_pb2.DiscoveryRequest):
                    if not stream.authority and item.node.id:
                        stream.authority = item.node.id
                        self.snapshots.follow(stream.authority, queue)
                    stream.take(item)
                for reply in stream.due(self.snapshots.get(stream.authority)):
                    yield reply
        finally:
            reader.cancel()
            self.snapshots.unfollow(stream.authority, queue)


async def _read(
    requests: AsyncIterator[discovery_pb2.DiscoveryRequest], queue: asyncio.Queue[object]
) -> None:
    try:
        async for request in requests:
            queue.put_nowait(request)
    finally:
        queue.put_nowait(None)
