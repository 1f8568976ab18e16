"""Per-call limits: keypair rate limits, usage counters, users' allowed client addresses."""

from __future__ import annotations

import ipaddress

import grpc

from bai.api.manager.v1 import auth_pb2, auth_pb2_grpc, keypair_pb2, keypair_pb2_grpc, user_pb2
from bai.common import signing
from bai.manager.auth import rate_limit
from bai.manager.auth.client_address import client_address, is_allowed, parse_networks
from tests.manager.fixtures import ManagerHandle
from tests.manager.test_users import fails, make_tenant, root, stub

WHOAMI = "/bai.api.manager.v1.AuthService/WhoAmI"
TRUSTED = parse_networks(["127.0.0.1/32", "::1/128"])


def test_client_address_believes_forwarded_for_only_from_trusted_proxies() -> None:
    ip = ipaddress.ip_address
    assert client_address("ipv4:127.0.0.1:5000", None, TRUSTED) == ip("127.0.0.1")
    assert client_address("ipv4:127.0.0.1:5000", "10.1.2.3", TRUSTED) == ip("10.1.2.3")
    # A client cannot hide behind a forged first hop: the right-most untrusted wins.
    assert client_address("ipv4:127.0.0.1:1", "10.1.2.3, 192.0.2.7", TRUSTED) == ip("192.0.2.7")
    assert client_address("ipv4:192.0.2.9:1", "10.1.2.3", TRUSTED) == ip("192.0.2.9")
    assert client_address("ipv6:[::1]:443", "2001:db8::5", TRUSTED) == ip("2001:db8::5")
    assert client_address("ipv4:127.0.0.1:1", "garbage", TRUSTED) == ip("127.0.0.1")
    assert client_address("unix:/tmp/sock", None, TRUSTED) is None
    assert is_allowed(None, ())
    assert not is_allowed(None, parse_networks(["10.0.0.0/8"]))


def test_rolling_window_weighs_the_previous_window() -> None:
    start = 1_000_000 * rate_limit.WINDOW_SECONDS
    assert rate_limit.rolling_count(5, 10, start) == 15
    assert rate_limit.rolling_count(5, 10, start + rate_limit.WINDOW_SECONDS / 2) == 10
    assert not rate_limit.exceeded(0, 10**9, 10**9, start)  # 0: no limit
    assert rate_limit.exceeded(3, 4, 0, start)


async def _whoami(channel: grpc.aio.Channel, md: list[tuple[str, str]]) -> auth_pb2.WhoAmIResponse:
    return await auth_pb2_grpc.AuthServiceStub(channel).WhoAmI(
        auth_pb2.WhoAmIRequest(), metadata=md
    )


async def _keypair(manager: ManagerHandle, channel: grpc.aio.Channel, user_id: str, limit: int):  # type: ignore[no-untyped-def]
    return await keypair_pb2_grpc.KeypairServiceStub(channel).CreateKeypair(
        keypair_pb2.CreateKeypairRequest(user_id=user_id, rate_limit=limit), metadata=root(manager)
    )


async def test_rate_limit_refuses_then_forged_calls_cost_nothing(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    t = await make_tenant(manager, channel)
    created = await _keypair(manager, channel, t.user.id, 3)
    ak, sk = created.keypair.access_key, created.secret_key
    for _ in range(5):  # forged signatures must not eat the budget
        await fails(
            _whoami(channel, signing.signed_metadata(ak, "wrong", WHOAMI)), "SIGNATURE_MISMATCH"
        )
    for _ in range(3):
        await _whoami(channel, signing.signed_metadata(ak, sk, WHOAMI))
    error = await fails(
        _whoami(channel, signing.signed_metadata(ak, sk, WHOAMI)),
        "RATE_LIMITED",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    assert "3" in (error.details() or "")


async def test_usage_is_counted_and_flushed(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    t = await make_tenant(manager, channel)
    created = await _keypair(manager, channel, t.user.id, 100)
    ak, sk = created.keypair.access_key, created.secret_key
    for _ in range(4):
        await _whoami(channel, signing.signed_metadata(ak, sk, WHOAMI))
    await manager.ctx.authenticator.usage.flush(manager.ctx.sessions)
    got = await keypair_pb2_grpc.KeypairServiceStub(channel).GetKeypair(
        keypair_pb2.GetKeypairRequest(access_key=ak), metadata=root(manager)
    )
    assert got.keypair.num_queries == 4
    assert got.keypair.HasField("last_used_at")


async def test_allowed_client_ip(manager: ManagerHandle, channel: grpc.aio.Channel) -> None:
    t = await make_tenant(manager, channel)
    update = user_pb2.UpdateUserRequest(
        user=user_pb2.User(id=t.user.id, allowed_client_ip=["10.0.0.0/8"]),
        update_mask={"paths": ["allowed_client_ip"]},
    )
    await stub(channel).UpdateUser(update, metadata=root(manager))
    # This test connects from 127.0.0.1, a trusted proxy that forwards nothing.
    await fails(
        _whoami(channel, t.user.signed(WHOAMI)),
        "CLIENT_ADDRESS_FORBIDDEN",
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await fails(_whoami(channel, t.user.md), "CLIENT_ADDRESS_FORBIDDEN")
    # As if through Envoy from inside the allowed network.
    me = await _whoami(channel, [*t.user.md, ("x-forwarded-for", "10.1.2.3")])
    assert me.username == t.user.username
    await fails(
        _whoami(channel, [*t.user.md, ("x-forwarded-for", "10.1.2.3, 192.0.2.7")]),
        "CLIENT_ADDRESS_FORBIDDEN",
    )
    # Other users of the domain are not affected.
    await _whoami(channel, t.admin.md)
