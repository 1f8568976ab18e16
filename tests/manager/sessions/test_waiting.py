"""Which feed events end CreateSession's wait (waiting.settled_by)."""

from __future__ import annotations

import uuid

import pytest

from bai.api.common.v1 import session_pb2 as common
from bai.api.manager.v1 import session_pb2
from bai.manager.sessions import events, waiting

MINE = str(uuid.uuid4())
OTHER = str(uuid.uuid4())


def stored(session_id: str, status: int) -> events.StoredEvent:
    scope = events.EventScope(session_id, "AKTEST", "u", "p", "default")
    event = session_pb2.SessionEvent(session_id=session_id, session_status=status)  # type: ignore[arg-type]
    return events.StoredEvent("1-0", scope, event)


@pytest.mark.parametrize(
    "status",
    [
        common.SESSION_STATUS_RUNNING,
        common.SESSION_STATUS_CANCELLED,
        common.SESSION_STATUS_TERMINATED,
    ],
)
def test_a_settled_status_of_this_session_ends_the_wait(status: int) -> None:
    found = [stored(MINE, common.SESSION_STATUS_CREATING), stored(MINE, status)]
    assert waiting.settled_by(found, MINE)


def test_unsettled_statuses_and_other_sessions_do_not() -> None:
    found = [
        stored(MINE, common.SESSION_STATUS_PREPARING),
        stored(MINE, common.SESSION_STATUS_UNSPECIFIED),
        stored(OTHER, common.SESSION_STATUS_RUNNING),
    ]
    assert not waiting.settled_by(found, MINE)
