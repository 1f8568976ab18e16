from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.client.fakes import Fake, serve


@pytest.fixture
def fake() -> Iterator[Fake]:
    """A fresh fake backend (auth + domains) on a free port, in its own threads."""
    with serve(Fake()) as running:
        yield running
