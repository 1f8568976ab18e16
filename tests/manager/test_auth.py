"""Authentication: each way to fail has its own reason; good credentials work."""

from __future__ import annotations

import time

import grpc
import pytest

from bai.api.manager.v1 import auth_pb2, auth_pb2_grpc
from bai.common import signing
from tests.manager.fixtures import ManagerHandle, bearer
from tests.rpc_errors import reason_of

WHOAMI = "/bai.api.manager.v1.AuthService/WhoAmI"


async def _whoami(channel: grpc.aio.Channel, md: list[tuple[str, str]]) -> auth_pb2.WhoAmIResponse:
    return await auth_pb2_grpc.AuthServiceStub(channel).WhoAmI(
        auth_pb2.WhoAmIRequest(), metadata=md
    )


async def _refused(channel: grpc.aio.Channel, md: list[tuple[str, str]]) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _whoami(channel, md)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    return reason_of(info.value)


async def test_signed_call_identifies_the_superadmin(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    md = signing.signed_metadata(manager.admin_access_key, manager.admin_secret_key, WHOAMI)
    me = await _whoami(channel, md)
    assert me.username == "admin"
    assert me.role == auth_pb2.USER_ROLE_SUPERADMIN
    assert me.access_key == manager.admin_access_key


async def test_bearer_token_works(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    me = await _whoami(channel, bearer(manager.admin_token))
    assert me.email == "admin@bai.local"
    assert me.access_key == ""


async def test_missing_credentials(channel):  # type: ignore[no-untyped-def]
    assert await _refused(channel, []) == "CREDENTIALS_MISSING"


async def test_wrong_signature(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    md = signing.signed_metadata(manager.admin_access_key, "not-the-secret", WHOAMI)
    assert await _refused(channel, md) == "SIGNATURE_MISMATCH"


async def test_signature_for_another_method_is_refused(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    md = signing.signed_metadata(
        manager.admin_access_key, manager.admin_secret_key, "/bai.api.manager.v1.AuthService/Logout"
    )
    assert await _refused(channel, md) == "SIGNATURE_MISMATCH"


@pytest.mark.parametrize("offset", [-16 * 60, 16 * 60])
async def test_expired_or_future_timestamp(manager: ManagerHandle, channel, offset: int):  # type: ignore[no-untyped-def]
    md = signing.signed_metadata(
        manager.admin_access_key, manager.admin_secret_key, WHOAMI, now=time.time() + offset
    )
    assert await _refused(channel, md) == "TIMESTAMP_SKEW"


async def test_replayed_nonce(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    md = signing.signed_metadata(manager.admin_access_key, manager.admin_secret_key, WHOAMI)
    await _whoami(channel, md)
    assert await _refused(channel, md) == "NONCE_REPLAYED"


async def test_unknown_access_key(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    md = signing.signed_metadata("AKIAUNKNOWNUNKNOWN00", manager.admin_secret_key, WHOAMI)
    assert await _refused(channel, md) == "UNKNOWN_ACCESS_KEY"


@pytest.mark.parametrize(
    "md",
    [
        [("authorization", "Basic abc")],
        [
            ("x-bai-access-key", "lower-case!"),
            ("x-bai-timestamp", "1"),
            ("x-bai-nonce", "abcdefgh"),
            ("x-bai-signature", "00"),
        ],
    ],
)
async def test_malformed_credentials(channel, md):  # type: ignore[no-untyped-def]
    assert await _refused(channel, md) == "CREDENTIALS_MALFORMED"


async def test_bad_timestamp_format(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    md = [
        ("x-bai-access-key", manager.admin_access_key),
        ("x-bai-timestamp", "yesterday"),
        ("x-bai-nonce", "abcdefgh1234"),
        ("x-bai-signature", "00"),
    ]
    assert await _refused(channel, md) == "CREDENTIALS_MALFORMED"


async def test_unknown_token(channel):  # type: ignore[no-untyped-def]
    assert await _refused(channel, bearer("no-such-token")) == "TOKEN_INVALID"


async def test_wrong_password_and_logout(channel):  # type: ignore[no-untyped-def]
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Login(auth_pb2.LoginRequest(username="admin", password="wrong-password"))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_of(info.value) == "LOGIN_FAILED"
    from tests.manager.fixtures import ADMIN_PASSWORD

    login = await stub.Login(auth_pb2.LoginRequest(username="admin", password=ADMIN_PASSWORD))
    await _whoami(channel, bearer(login.token))
    await stub.Logout(auth_pb2.LogoutRequest(), metadata=bearer(login.token))
    assert await _refused(channel, bearer(login.token)) == "TOKEN_INVALID"


async def test_login_validates_input(channel):  # type: ignore[no-untyped-def]
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Login(auth_pb2.LoginRequest(username="", password="x", ttl_seconds=-5))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(info.value) == "INVALID_FIELD"


async def test_later_contracts_answer_not_implemented(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    from bai.api.manager.v1 import deployment_pb2, deployment_pb2_grpc

    stub = deployment_pb2_grpc.DeploymentServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListDeployments(
            deployment_pb2.ListDeploymentsRequest(), metadata=bearer(manager.admin_token)
        )
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert reason_of(info.value) == "NOT_IMPLEMENTED"
