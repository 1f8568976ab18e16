"""Closed-loop load generator: N concurrent callers of AuthService.WhoAmI.

Run as a separate process so that its CPU use is its own:
    python bench/load.py ADDRESS SECONDS CONCURRENCY [ACCESS_KEY SECRET_KEY | TOKEN]
Prints one JSON object: {"rps", "p50_ms", "p99_ms", "ok", "errors"}.
Every call is signed when a keypair is given (a fresh nonce each time), or
carries "authorization: Bearer TOKEN" when one token is given.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import grpc

from bai.api.manager.v1 import auth_pb2, auth_pb2_grpc
from bai.common.signing import signed_metadata

METHOD = "/bai.api.manager.v1.AuthService/WhoAmI"


async def run(address: str, seconds: float, concurrency: int, keys: list[str]) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        request = auth_pb2.WhoAmIRequest()

        bearer = [("authorization", f"Bearer {keys[0]}")] if len(keys) == 1 else None

        async def one() -> float:
            md = signed_metadata(keys[0], keys[1], METHOD) if len(keys) == 2 else bearer
            started = time.perf_counter()
            await stub.WhoAmI(request, metadata=md, timeout=10)
            return time.perf_counter() - started

        for _ in range(50):  # warm up connections and caches
            await one()
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                try:
                    latencies.append(await one())
                except grpc.aio.AioRpcError:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    n = len(latencies)

    def pct(q: float) -> float:
        return latencies[min(n - 1, int(q * n))] * 1000 if n else 0.0

    return {"rps": n / elapsed, "p50_ms": pct(0.5), "p99_ms": pct(0.99), "ok": n, "errors": errors}


if __name__ == "__main__":
    address, seconds, concurrency, *keys = sys.argv[1:]
    print(json.dumps(asyncio.run(run(address, float(seconds), int(concurrency), keys))))
