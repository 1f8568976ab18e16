"""The ADS protocol as Envoy speaks it, against the servicer on a real gRPC server:
the whole set on subscription, clusters before listeners on a change, nothing
again on an ACK or a NACK, stale replies ignored, versions that survive a restart;
and waiting for a worker's streams to ACK a generation (`Snapshots.applied`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.rpc import status_pb2

from bai.common.shared_secret import INTERNAL_TOKEN_HEADER
from bai.coordinator.records import Route
from bai.coordinator.xds.ads import CLUSTERS, LISTENERS, AdsServicer, Applied, Snapshots
from bai.coordinator.xds.resources import worker_resources
from tests.coordinator.test_decisions import SETTINGS, circuit, worker

WORKER = "127.0.0.1:7000"
TOKEN = "ads-test-internal-token"


def rendered(
    *ports: int, kernel_port: int = 8000
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    w = worker(WORKER, port_start=7000, port_end=7010)
    route = (Route("k", "127.0.0.1", kernel_port),)
    cs = [circuit(WORKER, port=p, id=uuid.UUID(int=p), routes=route) for p in ports]
    return worker_resources(w, cs, SETTINGS)  # type: ignore[return-value]


class Envoy:
    """One ADS stream, driven like Envoy drives it; replies are read as they come."""

    def __init__(self, channel: grpc.aio.Channel, token: str = TOKEN) -> None:
        self.requests: asyncio.Queue[discovery_pb2.DiscoveryRequest | None] = asyncio.Queue()
        self.replies: asyncio.Queue[discovery_pb2.DiscoveryResponse] = asyncio.Queue()
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        metadata = [(INTERNAL_TOKEN_HEADER, token)] if token else []
        self.call = stub.StreamAggregatedResources(self._requests(), metadata=metadata)
        self.reader = asyncio.create_task(self._read())

    async def _requests(self) -> AsyncIterator[discovery_pb2.DiscoveryRequest]:
        while (request := await self.requests.get()) is not None:
            yield request

    async def _read(self) -> None:
        async for reply in self.call:
            self.replies.put_nowait(reply)

    def ask(self, type_url: str, **fields: object) -> None:
        request = discovery_pb2.DiscoveryRequest(type_url=type_url, **fields)  # type: ignore[arg-type]
        self.requests.put_nowait(request)

    async def reply(self) -> discovery_pb2.DiscoveryResponse:
        return await asyncio.wait_for(self.replies.get(), 10)

    async def quiet(self) -> bool:
        """True when nothing arrives for a moment (a bound, not a timing assertion)."""
        await asyncio.sleep(0.3)
        return self.replies.empty()

    async def close(self) -> None:
        self.requests.put_nowait(None)
        await asyncio.wait_for(self.reader, 10)


@pytest.fixture
async def ads() -> AsyncIterator[tuple[Snapshots, grpc.aio.Channel]]:
    snapshots = Snapshots()
    server = grpc.aio.server()
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(
        AdsServicer(snapshots, TOKEN), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield snapshots, channel
    finally:
        await channel.close()
        await server.stop(None)


async def test_subscription_change_ack_and_nack(ads: tuple[Snapshots, grpc.aio.Channel]) -> None:
    snapshots, channel = ads
    snapshots.set(WORKER, *rendered(7000))
    envoy = Envoy(channel)
    node = {"node": {"id": WORKER}}
    envoy.ask(CLUSTERS, **node)  # type: ignore[arg-type]
    clusters = await envoy.reply()
    assert clusters.type_url == CLUSTERS and len(clusters.resources) == 1
    cluster = cluster_pb2.Cluster()
    assert clusters.resources[0].Unpack(cluster) and cluster.name.startswith("circuit_")
    envoy.ask(LISTENERS)
    listeners = await envoy.reply()
    listener = listener_pb2.Listener()
    assert listeners.resources[0].Unpack(listener)
    assert listener.address.socket_address.port_value == 7000

    # ACKs: nothing more to send.
    envoy.ask(CLUSTERS, version_info=clusters.version_info, response_nonce=clusters.nonce)
    envoy.ask(LISTENERS, version_info=listeners.version_info, response_nonce=listeners.nonce)
    assert await envoy.quiet()

    # A new circuit: clusters first, then listeners, each with a new version.
    snapshots.set(WORKER, *rendered(7000, 7001))
    first, second = await envoy.reply(), await envoy.reply()
    assert (first.type_url, second.type_url) == (CLUSTERS, LISTENERS)
    assert len(second.resources) == 2 and second.version_info != listeners.version_info

    # A NACK is not answered with the same version again; a stale nonce changes nothing.
    envoy.ask(
        LISTENERS,
        version_info=listeners.version_info,
        response_nonce=second.nonce,
        error_detail=status_pb2.Status(code=3, message="bad listener"),
    )
    envoy.ask(CLUSTERS, version_info="old", response_nonce=clusters.nonce)
    assert await envoy.quiet()
    await envoy.close()


async def test_versions_depend_on_content_only(ads: tuple[Snapshots, grpc.aio.Channel]) -> None:
    snapshots, channel = ads
    snapshots.set(WORKER, *rendered(7000))
    before = snapshots.get(WORKER).versions
    restarted = Snapshots()
    restarted.set(WORKER, *rendered(7000))
    assert restarted.get(WORKER).versions == before
    restarted.set(WORKER, *rendered(7001))
    assert restarted.get(WORKER).versions[LISTENERS] != before[LISTENERS]

    # A worker the coordinator does not know yet gets empty sets, then its circuits.
    envoy = Envoy(channel)
    envoy.ask(CLUSTERS, node={"id": "127.0.0.1:7999"})  # type: ignore[arg-type]
    assert list((await envoy.reply()).resources) == []
    snapshots.set("127.0.0.1:7999", *rendered(7000))
    assert len((await envoy.reply()).resources) == 1
    await envoy.close()


async def test_a_stream_without_the_internal_token_is_refused(
    ads: tuple[Snapshots, grpc.aio.Channel],
) -> None:
    """The resources carry the cookie key: only callers with the token may read them."""
    snapshots, channel = ads
    snapshots.set(WORKER, *rendered(7000))
    for token in ("", "wrong"):
        stranger = Envoy(channel, token=token)
        stranger.ask(CLUSTERS, node={"id": WORKER})  # type: ignore[arg-type]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await asyncio.wait_for(stranger.reader, 10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert stranger.replies.empty()


async def subscribed(envoy: Envoy) -> tuple[discovery_pb2.DiscoveryResponse, ...]:
    """Subscribe as Envoy does (clusters, then listeners); the two first responses."""
    envoy.ask(CLUSTERS, node={"id": WORKER})  # type: ignore[arg-type]
    clusters = await envoy.reply()
    envoy.ask(LISTENERS)
    return clusters, await envoy.reply()


def ack(envoy: Envoy, *responses: discovery_pb2.DiscoveryResponse) -> None:
    for response in responses:
        envoy.ask(
            response.type_url, version_info=response.version_info, response_nonce=response.nonce
        )


async def still_open(snapshots: Snapshots, generation: int) -> bool:
    """True when the streams have not applied `generation` after a moment (a bound, not a
    timing assertion: what was sent before has been read by then)."""
    return await snapshots.applied(WORKER, generation, 0.3) is Applied.TIMED_OUT


async def test_applied_once_every_type_is_acked(ads: tuple[Snapshots, grpc.aio.Channel]) -> None:
    snapshots, channel = ads
    first = snapshots.set(WORKER, *rendered(7000))
    envoy = Envoy(channel)
    clusters, listeners = await subscribed(envoy)
    waiting = asyncio.create_task(snapshots.applied(WORKER, first, 10))
    ack(envoy, clusters)
    assert await still_open(snapshots, first)  # clusters alone are not the circuit
    ack(envoy, listeners)
    assert await waiting is Applied.APPLIED

    # An answer to an older response (stale nonce) does not count for the new generation.
    second = snapshots.set(WORKER, *rendered(7000, 7001))
    new_clusters, new_listeners = await envoy.reply(), await envoy.reply()
    ack(envoy, new_clusters)
    envoy.ask(LISTENERS, version_info=new_listeners.version_info, response_nonce=listeners.nonce)
    assert await still_open(snapshots, second)
    ack(envoy, new_listeners)
    assert await snapshots.applied(WORKER, second, 10) is Applied.APPLIED

    # A change of clusters only: the listeners ACKed before still hold it.
    third = snapshots.set(WORKER, *rendered(7000, 7001, kernel_port=8001))
    changed = await envoy.reply()
    assert changed.type_url == CLUSTERS and await envoy.quiet()
    ack(envoy, changed)
    assert await snapshots.applied(WORKER, third, 10) is Applied.APPLIED
    # Resources the worker already runs are the generation it has applied.
    assert snapshots.set(WORKER, *rendered(7000, 7001, kernel_port=8001)) == third
    await envoy.close()


async def test_a_nack_ends_the_wait(ads: tuple[Snapshots, grpc.aio.Channel]) -> None:
    snapshots, channel = ads
    snapshots.set(WORKER, *rendered(7000))
    envoy = Envoy(channel)
    ack(envoy, *await subscribed(envoy))
    generation = snapshots.set(WORKER, *rendered(7000, 7001))
    clusters, listeners = await envoy.reply(), await envoy.reply()
    waiting = asyncio.create_task(snapshots.applied(WORKER, generation, 10))
    ack(envoy, clusters)
    envoy.ask(
        LISTENERS,
        version_info="an older version",
        response_nonce=listeners.nonce,
        error_detail=status_pb2.Status(code=3, message="bad listener"),
    )
    assert await waiting is Applied.REJECTED
    await envoy.close()


async def test_no_stream_no_wait(ads: tuple[Snapshots, grpc.aio.Channel]) -> None:
    """Without an Envoy of the worker on ADS the caller does not wait; when the only one
    goes away, the wait ends; one that never answers is waited for until the bound."""
    snapshots, channel = ads
    generation = snapshots.set(WORKER, *rendered(7000))
    assert await snapshots.applied(WORKER, generation, 10) is Applied.NO_STREAM

    silent = Envoy(channel)
    await subscribed(silent)
    assert await snapshots.applied(WORKER, generation, 0.2) is Applied.TIMED_OUT
    waiting = asyncio.create_task(snapshots.applied(WORKER, generation, 10))
    assert await still_open(snapshots, generation)
    await silent.close()
    assert await waiting is Applied.NO_STREAM

    # With two Envoys of the worker, both must have ACKed.
    one, other = Envoy(channel), Envoy(channel)
    ack(one, *await subscribed(one))
    await subscribed(other)
    assert await still_open(snapshots, generation)
    await one.close()
    await other.close()


async def test_close_ends_every_stream_and_refuses_new_ones(
    ads: tuple[Snapshots, grpc.aio.Channel],
) -> None:
    # A stopping coordinator ends its streams itself: else each holds the server's
    # shutdown for the whole grace period and ends CANCELLED.
    snapshots, channel = ads
    listeners, clusters = rendered(7001)
    snapshots.set(WORKER, listeners, clusters)
    envoy = Envoy(channel)
    envoy.ask(CLUSTERS, node={"id": WORKER})
    assert (await envoy.reply()).type_url == CLUSTERS
    snapshots.close()
    await asyncio.wait_for(envoy.reader, 10)  # the stream ended, and without an error
    assert await envoy.call.code() == grpc.StatusCode.OK
    late = Envoy(channel)
    late.ask(CLUSTERS, node={"id": WORKER})
    await asyncio.wait_for(late.reader, 10)
    assert late.replies.empty() and await late.call.code() == grpc.StatusCode.OK
