"""Restarting the coordinator: routes keep serving throughout, state is the same after."""

from __future__ import annotations

import asyncio

import aiohttp

from bai.api.coordinator.v1 import coordinator_pb2 as pb
from bai.coordinator.xds.files import worker_directory
from tests.coordinator.client import fetch, minted_cookie, wait_serving
from tests.coordinator.conftest import Proxy, internal
from tests.coordinator.harness import App


async def snapshot(proxy: Proxy) -> tuple[list[pb.Circuit], list[pb.Worker], dict[str, str]]:
    circuits = await proxy.circuits.ListCircuits(pb.ListCircuitsRequest(), metadata=internal())
    workers = await proxy.workers.ListWorkers(pb.ListWorkersRequest(), metadata=internal())
    for w in workers.workers:
        w.ClearField("last_heartbeat_at")  # the restarted coordinator beats for its own Envoy
    directory = worker_directory(proxy.config.xds.directory, proxy.worker)
    files = {p.name: p.read_text() for p in sorted(directory.glob("*.json"))}
    return list(circuits.circuits), list(workers.workers), files


async def test_routes_keep_serving_through_a_restart(proxy: Proxy) -> None:
    app = App("steady")
    await app.start()
    try:
        private = await proxy.create(app.port)
        public = await proxy.create(app.port, public=True)
        await wait_serving(private.url, minted_cookie(private))
        await wait_serving(public.url)
        redeemed = await fetch(f"{private.url}?token={await proxy.token(private)}")
        cookie = {"cookie": redeemed.headers["set-cookie"].split(";", 1)[0]}
        used_token = await proxy.token(private)
        assert (await fetch(f"{private.url}?token={used_token}")).status == 302
        before = await snapshot(proxy)

        statuses: list[int] = []
        done = asyncio.Event()

        async def keep_asking() -> None:
            while not done.is_set():
                try:
                    statuses.append((await fetch(private.url, cookie)).status)
                    statuses.append((await fetch(public.url)).status)
                except aiohttp.ClientError:
                    statuses.append(-1)
                await asyncio.sleep(0.002)

        asker = asyncio.create_task(keep_asking())
        await asyncio.sleep(0.05)
        await proxy.running.stop()
        down = len(statuses)
        await asyncio.sleep(0.2)  # requests while no coordinator runs at all
        during = len(statuses) - down
        proxy.running = await proxy.restart_only()
        await asyncio.sleep(0.05)
        done.set()
        await asker

        assert during > 0 and statuses and set(statuses) == {200}, statuses
        assert await snapshot(proxy) == before
        # The restarted coordinator remembers spent tokens and redeems new ones.
        assert (await fetch(f"{private.url}?token={used_token}")).status == 401
        assert (await fetch(f"{private.url}?token={await proxy.token(private)}")).status == 302
    finally:
        await app.stop()
