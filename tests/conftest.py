"""Shared fixtures. ``stack``: throwaway PostgreSQL, Redis and etcd for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bai.stack.testing import ThrowawayStack

# The real manager (`manager`, `channel` fixtures), for every test package.
pytest_plugins = ["tests.manager.fixtures"]


@pytest.fixture(scope="session")
def stack() -> Iterator[ThrowawayStack]:
    """PostgreSQL, Redis and etcd on free ports in a temp dir, started in parallel once
    per session and torn down at the end (also when tests fail). Attributes: ``pg_dsn``
    (SQLAlchemy asyncpg URL), ``redis_url``, ``etcd_endpoint`` (host:port), ``etcd_host``,
    ``etcd_port``, ``config`` (a StackConfig) and ``stack`` (the bai.stack.Stack)."""
    instance = ThrowawayStack()
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()
