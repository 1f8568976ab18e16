"""Building requests from keywords: friendly types, merging, request ids; retry backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bai.api.manager.v1 import (
    audit_pb2,
    auth_pb2,
    domain_pb2,
    resource_policy_pb2,
    user_pb2,
)
from bai.client import RetryPolicy
from bai.client._requests import build_request, short_enum_name


def test_enum_by_full_or_short_name() -> None:
    req = build_request(user_pb2.ListUsersRequest, None, {"role": "admin", "status": "ACTIVE"})
    assert req.role == auth_pb2.USER_ROLE_ADMIN
    assert req.status == user_pb2.USER_STATUS_ACTIVE
    req = build_request(user_pb2.ListUsersRequest, None, {"role": "USER_ROLE_MONITOR"})
    assert req.role == auth_pb2.USER_ROLE_MONITOR
    with pytest.raises(ValueError, match="superadmin"):
        build_request(user_pb2.ListUsersRequest, None, {"role": "king"})


def test_short_enum_name() -> None:
    enum = auth_pb2.DESCRIPTOR.enum_types_by_name["UserRole"]
    assert short_enum_name(enum, auth_pb2.USER_ROLE_SUPERADMIN) == "superadmin"


def test_datetime_timedelta_mask_and_slots() -> None:
    since = datetime(2024, 1, 1, tzinfo=UTC)
    req = build_request(audit_pb2.ListAuditLogsRequest, None, {"since": since})
    assert req.since.ToDatetime(tzinfo=UTC) == since
    policy = resource_policy_pb2.KeypairResourcePolicy(name="p")
    policy.idle_timeout.FromTimedelta(timedelta(minutes=5))
    upd = build_request(
        resource_policy_pb2.UpdateKeypairResourcePolicyRequest,
        None,
        {"policy": policy, "update_mask": ["idle_timeout"]},
    )
    assert upd.update_mask.paths == ["idle_timeout"]
    assert upd.policy.idle_timeout.seconds == 300


def test_keywords_override_the_request_copy() -> None:
    base = domain_pb2.ListDomainsRequest(page_size=5, page_token="abc")
    req = build_request(domain_pb2.ListDomainsRequest, base, {"page_size": 0, "page_token": None})
    assert req.page_size == 0 and req.page_token == "abc"
    assert base.page_size == 5  # the caller's message is not changed
    with pytest.raises(TypeError):
        build_request(domain_pb2.ListDomainsRequest, domain_pb2.GetDomainRequest(), {})


def test_request_id_is_filled_only_when_empty() -> None:
    fresh = build_request(domain_pb2.CreateDomainRequest, None, {}, fill_request_id=True)
    again = build_request(domain_pb2.CreateDomainRequest, None, {}, fill_request_id=True)
    assert len(fresh.request_id) == 32 and fresh.request_id != again.request_id
    kept = build_request(
        domain_pb2.CreateDomainRequest, None, {"request_id": "mine"}, fill_request_id=True
    )
    assert kept.request_id == "mine"


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(initial_backoff=1.0, multiplier=2.0, max_backoff=3.0, jitter=0.5)
    for n, top in [(1, 1.0), (2, 2.0), (3, 3.0), (8, 3.0)]:
        waits = [policy.backoff(n) for _ in range(50)]
        assert all(top * 0.5 <= w <= top for w in waits)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
