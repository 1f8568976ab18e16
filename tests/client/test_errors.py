"""google.rpc.Status details become typed exceptions with reason, metadata and violations."""

from __future__ import annotations

import grpc
import pytest

from bai.api.manager.v1 import domain_pb2
from bai.client import Client, KeypairCredentials, errors
from tests.client.fakes import ACCESS_KEY, SECRET_KEY, Fake

EXPECTED = [
    ("INVALID_ARGUMENT", errors.InvalidArgument),
    ("OUT_OF_RANGE", errors.OutOfRange),
    ("UNAUTHENTICATED", errors.Unauthenticated),
    ("PERMISSION_DENIED", errors.PermissionDenied),
    ("NOT_FOUND", errors.NotFound),
    ("ALREADY_EXISTS", errors.AlreadyExists),
    ("FAILED_PRECONDITION", errors.FailedPrecondition),
    ("ABORTED", errors.Aborted),
    ("RESOURCE_EXHAUSTED", errors.ResourceExhausted),
    ("UNIMPLEMENTED", errors.Unimplemented),
    ("INTERNAL", errors.Internal),
    ("DATA_LOSS", errors.Internal),
]


@pytest.fixture
def client(fake: Fake):  # type: ignore[no-untyped-def]
    with Client(fake.address, KeypairCredentials(ACCESS_KEY, SECRET_KEY)) as c:
        yield c


@pytest.mark.parametrize(("code", "cls"), EXPECTED)
def test_status_code_picks_the_class(client: Client, code: str, cls: type) -> None:
    with pytest.raises(errors.BaiError) as info:
        client.domains.get_domain(name=f"fail-{code}")
    exc = info.value
    assert type(exc) is cls
    assert exc.code == grpc.StatusCode[code]
    assert exc.reason == code
    assert exc.domain == "bai"
    assert exc.metadata == {"correlation_id": "c1"}
    assert exc.message == f"failing with {code}"
    assert exc.status is not None and exc.status.code == grpc.StatusCode[code].value[0]


def test_out_of_range_is_an_invalid_argument(client: Client) -> None:
    with pytest.raises(errors.InvalidArgument):
        client.domains.get_domain(name="fail-OUT_OF_RANGE")


def test_field_violations(client: Client) -> None:
    with pytest.raises(errors.InvalidArgument) as info:
        client.domains.create_domain(domain=domain_pb2.Domain(name=""))
    exc = info.value
    assert exc.reason == "INVALID_FIELD"
    assert exc.field_violations == [errors.FieldViolation("domain.name", "must not be empty")]
    assert str(exc) == (
        "INVALID_ARGUMENT (INVALID_FIELD): invalid request; domain.name: must not be empty"
    )


def test_reason_distinguishes_within_a_class(client: Client) -> None:
    with pytest.raises(errors.FailedPrecondition) as info:
        client.domains.delete_domain(name="busy")
    assert info.value.reason == "IN_USE"


def test_status_without_details_falls_back_to_the_code(client: Client) -> None:
    with pytest.raises(errors.Internal) as info:
        client.domains.get_domain(name="plain-error")
    assert info.value.reason == "INTERNAL"
    assert info.value.message == "no details here"
    assert info.value.field_violations == []


def test_unreachable_server_is_unavailable() -> None:
    from bai.client import RetryPolicy

    with Client("127.0.0.1:1", retry=RetryPolicy(max_attempts=1), timeout=2) as c:
        with pytest.raises(errors.Unavailable):
            c.auth.login(username="a", password="b")


def test_every_error_class_is_exported() -> None:
    for cls in errors.ERROR_CLASSES.values():
        assert issubclass(cls, errors.BaiError)
        assert cls.__name__ in errors.__all__
