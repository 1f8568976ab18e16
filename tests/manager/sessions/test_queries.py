"""Who sees which sessions, and paging through them."""

from __future__ import annotations

import grpc

from bai.api.manager.v1 import session_pb2 as pb
from tests.manager.callers import refused
from tests.manager.fixtures import ManagerHandle
from tests.manager.sessions.helpers import call, create, create_request, make_group, member
from tests.rpc_errors import reason_of


async def test_paging_is_newest_first_without_overlap(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    made = [(await create(channel, user, create_request(group))).id for _ in range(3)]
    first = await call(
        channel, user, "ListSessions", pb.ListSessionsRequest(page_size=2, scaling_group=group)
    )
    assert first.next_page_token
    second = await call(
        channel,
        user,
        "ListSessions",
        pb.ListSessionsRequest(page_size=2, scaling_group=group, page_token=first.next_page_token),
    )
    assert second.next_page_token == ""
    listed = [s.id for s in first.sessions] + [s.id for s in second.sessions]
    assert listed == list(reversed(made))
    other_query = pb.ListSessionsRequest(page_size=2, page_token=first.next_page_token)
    error = await refused(call(channel, user, "ListSessions", other_query))
    assert reason_of(error) == "INVALID_PAGE_TOKEN"


async def test_admins_and_monitors_see_their_domain(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    owner = await member(manager)
    admin = await member(manager, "admin")
    monitor = await member(manager, "monitor")
    session = await create(channel, owner, create_request(group))
    for who in (admin, monitor):
        got = await call(channel, who, "GetSession", pb.GetSessionRequest(session_id=session.id))
        assert got.session.id == session.id
        listed = await call(
            channel, who, "ListSessions", pb.ListSessionsRequest(scaling_group=group)
        )
        assert [s.id for s in listed.sessions] == [session.id]
    destroy = pb.DestroySessionRequest(session_id=session.id)
    error = await refused(call(channel, monitor, "DestroySession", destroy))
    assert reason_of(error) == "READ_ONLY_ROLE"
    reply = await call(channel, admin, "DestroySession", destroy)
    assert reply.session.status_reason
