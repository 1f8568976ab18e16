"""Two manager replicas share Redis: a change made through one is honoured by the other."""

from __future__ import annotations

import asyncio
import time

import pytest

from bai.api.manager.v1 import user_pb2
from bai.common.errors import Unauthenticated
from bai.manager.context import ManagerContext
from tests.manager.fixtures import ManagerHandle
from tests.manager.test_users import make_tenant, stub

WHOAMI = "/bai.api.manager.v1.AuthService/WhoAmI"


async def _refused_within(replica: ManagerContext, md: dict[str, str], seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while True:
        try:
            await replica.authenticator.authenticate(WHOAMI, md)
        except Unauthenticated as exc:
            return exc.reason
        if time.monotonic() > deadline:
            raise AssertionError("the other replica still accepts the credentials")
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("live_feed", [True, False], ids=["change-feed", "epoch-per-call"])
async def test_deactivation_reaches_the_other_replica(
    manager: ManagerHandle,
    channel,
    live_feed: bool,  # type: ignore[no-untyped-def]
) -> None:
    replica = ManagerContext.create(manager.ctx.config)
    if live_feed:
        replica.start_background()
    try:
        deadline = time.monotonic() + 5
        while live_feed and not replica.authenticator.changes.live:
            assert time.monotonic() < deadline, "change feed never came up"
            await asyncio.sleep(0.01)
        t = await make_tenant(manager, channel)
        token_md = dict(t.user.md)
        # The replica caches the user's token and key.
        for _ in range(3):
            await replica.authenticator.authenticate(WHOAMI, token_md)
            await replica.authenticator.authenticate(WHOAMI, dict(t.user.signed(WHOAMI)))
        update = user_pb2.UpdateUserRequest(
            user=user_pb2.User(id=t.user.id, status=user_pb2.USER_STATUS_INACTIVE),
            update_mask={"paths": ["status"]},
        )
        await stub(channel).UpdateUser(update, metadata=t.admin.md)
        # Without the feed the epoch read makes it immediate; with it, a message away.
        budget = 2.0 if live_feed else 0.0
        assert await _refused_within(replica, token_md, budget) == "TOKEN_INVALID"
        signed = dict(t.user.signed(WHOAMI))
        assert await _refused_within(replica, signed, budget) == "USER_INACTIVE"
    finally:
        await replica.close()
