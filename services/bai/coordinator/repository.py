"""The coordinator's rows: workers, circuits and spent app tokens (SQLAlchemy Core)."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bai.common.pg_engine import create_pg_engine
from bai.coordinator.config import DatabaseConfig
from bai.coordinator.db import SCHEMA, circuits, spent_app_tokens, workers
from bai.coordinator.records import Circuit, Route, Worker


class SlotTaken(Exception):
    """Another circuit got the same port or subdomain first (a concurrent create)."""


def create_engine(config: DatabaseConfig) -> AsyncEngine:
    return create_pg_engine(
        config.url,
        config.pool_size,
        execution_options={"schema_translate_map": {SCHEMA: config.schema_name}},
    )


def _worker(row: Any) -> Worker:
    return Worker(
        authority=row.authority,
        frontend_mode=row.frontend_mode,
        hostname=row.hostname,
        use_tls=row.use_tls,
        port_start=row.port_start,
        port_end=row.port_end,
        wildcard_domain=row.wildcard_domain,
        available_slots=row.available_slots,
        status=row.status,
        last_heartbeat_at=row.last_heartbeat_at,
        created_at=row.created_at,
    )


def _circuit(row: Any) -> Circuit:
    return Circuit(
        id=row.id,
        request_id=row.request_id,
        request_digest=row.request_digest,
        app=row.app,
        protocol=row.protocol,
        app_mode=row.app_mode,
        frontend_mode=row.frontend_mode,
        worker=row.worker,
        port=row.port,
        subdomain=row.subdomain or "",
        envs=dict(row.envs),
        arguments=dict(row.arguments),
        open_to_public=row.open_to_public,
        allowed_client_ips=tuple(row.allowed_client_ips),
        user_id=row.user_id,
        endpoint_id=row.endpoint_id,
        runtime_variant=row.runtime_variant,
        session_ids=tuple(row.session_ids),
        routes=tuple(Route(**r) for r in row.routes),
        created_at=row.created_at,
        updated_at=row.updated_at,
        expires_at=row.expires_at,
    )


class Repository:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def load(self) -> tuple[list[Worker], list[Circuit]]:
        async with self.engine.connect() as conn:
            found = (await conn.execute(select(workers).order_by(workers.c.authority))).all()
            rows = (await conn.execute(select(circuits).order_by(circuits.c.created_at))).all()
        return [_worker(r) for r in found], [_circuit(r) for r in rows]

    async def save_worker(self, worker: Worker) -> Worker:
        """Insert or update by authority; `created_at` stays the first registration's."""
        values = asdict(worker)
        values.pop("created_at")
        stmt = insert(workers).values(**values)
        upsert = stmt.on_conflict_do_update(
            index_elements=[workers.c.authority],
            set_={k: stmt.excluded[k] for k in values if k != "authority"},
        ).returning(workers)
        async with self.engine.begin() as conn:
            return _worker((await conn.execute(upsert)).one())

    async def set_worker_status(
        self, authority: str, status: str, heartbeat_at: datetime | None = None
    ) -> Worker | None:
        values: dict[str, Any] = {"status": status}
        if heartbeat_at is not None:
            values["last_heartbeat_at"] = heartbeat_at
        stmt = (
            update(workers)
            .where(workers.c.authority == authority)
            .values(**values)
            .returning(workers)
        )
        async with self.engine.begin() as conn:
            row = (await conn.execute(stmt)).one_or_none()
        return None if row is None else _worker(row)

    async def insert_circuit(self, circuit: Circuit) -> Circuit:
        values = _circuit_values(circuit)
        try:
            async with self.engine.begin() as conn:
                row = (
                    await conn.execute(insert(circuits).values(**values).returning(circuits))
                ).one()
        except IntegrityError as exc:
            raise SlotTaken(str(exc.orig)) from exc
        return _circuit(row)

    async def update_routes(
        self, circuit_id: uuid.UUID, routes: tuple[Route, ...], session_ids: tuple[str, ...]
    ) -> Circuit | None:
        stmt = (
            update(circuits)
            .where(circuits.c.id == circuit_id)
            .values(
                routes=[asdict(r) for r in routes],
                session_ids=list(session_ids),
                updated_at=datetime.now(UTC),
            )
            .returning(circuits)
        )
        async with self.engine.begin() as conn:
            row = (await conn.execute(stmt)).one_or_none()
        return None if row is None else _circuit(row)

    async def delete_circuits(self, circuit_ids: list[uuid.UUID]) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(circuits).where(circuits.c.id.in_(circuit_ids)))

    async def spend_app_token(self, jti: str, circuit_id: uuid.UUID, expires_at: datetime) -> bool:
        """Record a redeemed token; False when it was redeemed before (a replay)."""
        now = datetime.now(UTC)
        stmt = (
            insert(spent_app_tokens)
            .values(jti=jti, circuit_id=circuit_id, expires_at=expires_at)
            .on_conflict_do_nothing()
            .returning(spent_app_tokens.c.jti)
        )
        async with self.engine.begin() as conn:
            # Expired tokens are refused by their signature check anyway.
            await conn.execute(delete(spent_app_tokens).where(spent_app_tokens.c.expires_at < now))
            return (await conn.execute(stmt)).one_or_none() is not None


def _circuit_values(c: Circuit) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": c.id,
        "request_id": c.request_id,
        "request_digest": c.request_digest,
        "app": c.app,
        "protocol": c.protocol,
        "app_mode": c.app_mode,
        "frontend_mode": c.frontend_mode,
        "worker": c.worker,
        "port": c.port,
        "subdomain": c.subdomain or None,
        "envs": c.envs,
        "arguments": c.arguments,
        "open_to_public": c.open_to_public,
        "allowed_client_ips": list(c.allowed_client_ips),
        "user_id": c.user_id,
        "endpoint_id": c.endpoint_id,
        "runtime_variant": c.runtime_variant,
        "session_ids": list(c.session_ids),
        "routes": [asdict(r) for r in c.routes],
        "expires_at": c.expires_at,
    }
    if c.created_at is not None:
        # Set by the caller when expires_at is reckoned from it, so the two agree.
        values["created_at"] = values["updated_at"] = c.created_at
    return values
