"""Signing, bearer tokens, retries, request ids, paging and timeouts against the fake backend."""

from __future__ import annotations

import grpc
import pytest

from bai.api.manager.v1 import domain_pb2
from bai.client import (
    AsyncClient,
    Client,
    KeypairCredentials,
    RetryPolicy,
    TokenCredentials,
    errors,
)
from bai.common import signing
from tests.client.fakes import ACCESS_KEY, PASSWORD, SECRET_KEY, TOKEN, USERNAME, Fake

FAST = RetryPolicy(max_attempts=4, initial_backoff=0.01, max_backoff=0.02)
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


def keypair_client(fake: Fake, **kw: object) -> Client:
    return Client(fake.address, KeypairCredentials(ACCESS_KEY, SECRET_KEY), retry=FAST, **kw)  # type: ignore[arg-type]


def test_keypair_signs_every_call_and_every_retry(fake: Fake) -> None:
    fake.inject("WhoAmI", UNAVAILABLE, times=2)
    with keypair_client(fake) as client:
        me = client.auth.who_am_i()
    assert me.username == USERNAME and me.access_key == ACCESS_KEY
    calls = fake.calls_to("WhoAmI")
    assert len(calls) == 3
    nonces = {c.metadata[signing.NONCE] for c in calls}
    assert len(nonces) == 3  # a fresh nonce per attempt
    for call in calls:
        md = call.metadata
        assert signing.signature_matches(
            SECRET_KEY,
            "/bai.api.manager.v1.AuthService/WhoAmI",
            md[signing.TIMESTAMP],
            md[signing.NONCE],
            md[signing.SIGNATURE],
        )


def test_wrong_secret_is_unauthenticated(fake: Fake) -> None:
    with Client(fake.address, KeypairCredentials(ACCESS_KEY, "wrong")) as client:
        with pytest.raises(errors.Unauthenticated) as info:
            client.auth.who_am_i()
    assert info.value.reason == "SIGNATURE_MISMATCH"
    assert str(info.value).startswith("UNAUTHENTICATED (SIGNATURE_MISMATCH): ")


def test_login_switches_to_the_bearer_token(fake: Fake) -> None:
    with Client(fake.address) as client:
        with pytest.raises(errors.Unauthenticated) as info:
            client.whoami()
        assert info.value.reason == "CREDENTIALS_MISSING"
        response = client.login(USERNAME, PASSWORD)
        assert response.token == TOKEN
        assert isinstance(client.credentials, TokenCredentials)
        assert client.whoami().username == USERNAME
    assert fake.calls_to("WhoAmI")[-1].metadata["authorization"] == f"Bearer {TOKEN}"


def test_non_idempotent_calls_are_not_retried(fake: Fake) -> None:
    fake.inject("Login", UNAVAILABLE)
    with Client(fake.address, retry=FAST) as client:
        with pytest.raises(errors.Unavailable):
            client.auth.login(username=USERNAME, password=PASSWORD)
    assert len(fake.calls_to("Login")) == 1


def test_update_without_request_id_is_retried_only_on_request(fake: Fake) -> None:
    with keypair_client(fake) as client:
        client.domains.create_domain(domain=domain_pb2.Domain(name="d1"))
        fake.inject("UpdateDomain", UNAVAILABLE)
        update = {"domain": domain_pb2.Domain(name="d1", description="x")}
        with pytest.raises(errors.Unavailable):
            client.domains.update_domain(**update, update_mask=["description"])
        fake.inject("UpdateDomain", UNAVAILABLE)
        out = client.domains.update_domain(**update, update_mask=["description"], retry=True)
    assert out.domain.description == "x"
    assert len(fake.calls_to("UpdateDomain")) == 3


def test_create_fills_one_request_id_for_all_attempts(fake: Fake) -> None:
    fake.inject("CreateDomain", UNAVAILABLE)
    with keypair_client(fake) as client:
        created = client.domains.create_domain(domain=domain_pb2.Domain(name="research"))
        mine = client.domains.create_domain(
            domain=domain_pb2.Domain(name="mine"), request_id="my-own-id"
        )
    assert created.domain.name == "research" and mine.domain.name == "mine"
    ids = [c.request.request_id for c in fake.calls_to("CreateDomain")]
    assert len(ids) == 3 and ids[0] == ids[1] and len(ids[0]) == 32 and ids[2] == "my-own-id"


def test_retries_stop_after_max_attempts(fake: Fake) -> None:
    fake.inject("GetDomain", UNAVAILABLE, times=10)
    with keypair_client(fake) as client:
        with pytest.raises(errors.Unavailable) as info:
            client.domains.get_domain(name="x")
    assert info.value.reason == "DEPENDENCY_UNAVAILABLE"
    assert len(fake.calls_to("GetDomain")) == FAST.max_attempts


def test_retry_deadline_bounds_the_retries(fake: Fake) -> None:
    fake.inject("GetDomain", UNAVAILABLE, times=10)
    slow = RetryPolicy(max_attempts=10, initial_backoff=0.3, deadline=0.5)
    with Client(fake.address, KeypairCredentials(ACCESS_KEY, SECRET_KEY), retry=slow) as client:
        with pytest.raises(errors.Unavailable):
            client.domains.get_domain(name="x")
    assert 1 < len(fake.calls_to("GetDomain")) < 4


def test_default_timeout_applies(fake: Fake) -> None:
    with keypair_client(fake, timeout=0.2) as client:
        with pytest.raises(errors.DeadlineExceeded):
            client.domains.get_domain(name="slow")
        with pytest.raises(errors.NotFound):  # a per-call timeout overrides the default
            client.domains.get_domain(name="absent", timeout=5)


def test_pager_follows_next_page_token(fake: Fake) -> None:
    with keypair_client(fake) as client:
        for i in range(5):
            client.domains.create_domain(domain=domain_pb2.Domain(name=f"d{i}"))
        names = [d.name for d in client.domains.iter_domains(page_size=2)]
    assert names == ["d0", "d1", "d2", "d3", "d4"]
    tokens = [c.request.page_token for c in fake.calls_to("ListDomains")]
    assert tokens == ["", "2", "4"]


async def test_async_client_signs_retries_and_pages(fake: Fake) -> None:
    fake.inject("WhoAmI", UNAVAILABLE)
    creds = KeypairCredentials(ACCESS_KEY, SECRET_KEY)
    async with AsyncClient(fake.address, creds, retry=FAST) as client:
        me = await client.whoami()
        assert me.access_key == ACCESS_KEY
        for i in range(3):
            await client.domains.create_domain(domain=domain_pb2.Domain(name=f"a{i}"))
        names = [d.name async for d in client.domains.iter_domains(page_size=2)]
        with pytest.raises(errors.NotFound) as info:
            await client.domains.get_domain(name="nope")
    assert names == ["a0", "a1", "a2"]
    assert info.value.reason == "NOT_FOUND" and str(info.value) == "NOT_FOUND: domain not found"
    nonces = {c.metadata[signing.NONCE] for c in fake.calls_to("WhoAmI")}
    assert len(nonces) == 2


async def test_async_login_and_non_retry(fake: Fake) -> None:
    fake.inject("Login", UNAVAILABLE)
    async with AsyncClient(fake.address, retry=FAST) as client:
        with pytest.raises(errors.Unavailable):
            await client.login(USERNAME, PASSWORD)
        await client.login(USERNAME, PASSWORD)
        assert (await client.whoami()).username == USERNAME
    assert len(fake.calls_to("Login")) == 2
