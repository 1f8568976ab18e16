"""The image reference CommitKernel accepts as its target: Docker's grammar."""

from __future__ import annotations

import pytest

from bai.agent.kernels.commit import target_reference
from bai.common.errors import InvalidArgument
from bai.common.image_refs import reference_problem


@pytest.mark.parametrize(
    ("reference", "normalized"),
    [
        ("bai.local/customized/0a1b2c/myimg:v1", "bai.local/customized/0a1b2c/myimg:v1"),
        ("localhost:5000/a_b/c-d.e:Tag_1.2-x", "localhost:5000/a_b/c-d.e:Tag_1.2-x"),
        ("cr.Example.com/a__b/c---d", "cr.Example.com/a__b/c---d:latest"),
        ("python:3.11", "python:3.11"),
        ("localhost/x", "localhost/x:latest"),
    ],
)
def test_valid_references(reference: str, normalized: str) -> None:
    assert reference_problem(reference) is None
    assert target_reference(reference) == normalized


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        ("", "is required"),
        ("bai.local/Upper/x:v1", "invalid path component 'Upper'"),
        ("Upper/x:v1", "invalid path component 'Upper'"),
        ("bai.local/x/y:-v1", "invalid tag '-v1'"),
        ("bai.local/x/y:" + "t" * 129, "invalid tag"),
        ("bai.local/x/y:", "invalid tag ''"),
        ("bai.local/x//y:v1", "invalid path component ''"),
        ("bai.local/x/y_:v1", "invalid path component 'y_'"),
        ("-bad.host/x:v1", "invalid registry host '-bad.host'"),
        ("bai.local/x/y@sha256:" + "0" * 64, "not a digest"),
        ("bai.local/" + "a" * 250 + ":v1", "longer than 255"),
    ],
)
def test_invalid_references(reference: str, problem: str) -> None:
    found = reference_problem(reference)
    assert found is not None and problem in found
    with pytest.raises(InvalidArgument) as refused:
        target_reference(reference)
    assert [v.field for v in refused.value.violations] == ["target.canonical"]
