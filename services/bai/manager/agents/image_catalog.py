"""ImageService's domain: who sees which images, listing, aliases, forgetting.

Superadmins see and manage everything (DELETED images on request). Everyone
else sees ALIVE images of the registries their domain allows
(allowed_docker_registries), images built on agents without an owner
(is_local: no registry to allow), and their own customized images; anything
else is IMAGE_NOT_FOUND.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, false, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from bai.common.errors import AlreadyExists, NotFound, PermissionDenied
from bai.manager.agents.images import image_key, resolve_image
from bai.manager.agents.registry import CONNECTED
from bai.manager.auth.access import Access, require_superadmin
from bai.manager.auth.principal import Principal
from bai.manager.db.compute import AgentRow, ImageAliasRow, ImageRow
from bai.manager.db.identity import DomainRow
from bai.manager.paging import decode_token, encode_token


@dataclass(frozen=True)
class ImageFilters:
    architecture: str = ""
    registry: str = ""
    name_contains: str = ""
    image_type: str = ""
    installed_in_scaling_group: str = ""
    include_deleted: bool = False
    customized_only: bool = False


@dataclass
class ImageView:
    row: ImageRow
    aliases: list[str] = field(default_factory=list)
    installed_agent_ids: list[str] = field(default_factory=list)


def image_not_found(what: str = "image") -> NotFound:
    return NotFound(f"{what} not found", reason="IMAGE_NOT_FOUND")


async def _visible(db: AsyncSession, p: Principal) -> ColumnElement[bool] | None:
    """The condition on ImageRow for what `p` may see (None: everything)."""
    if p.is_superadmin:
        return None
    registries = await db.scalar(
        select(DomainRow.allowed_docker_registries).where(DomainRow.name == p.domain_name)
    )
    return (ImageRow.status == "ALIVE") & or_(
        ImageRow.registry_name.in_(list(registries or [])),
        ImageRow.is_local & ImageRow.owner_user_id.is_(None),
        ImageRow.owner_user_id == p.user_id,
    )


async def require_usable(db: AsyncSession, owner: Principal, image: ImageRow) -> None:
    """A session's owner may run what they may see: REGISTRY_NOT_ALLOWED otherwise."""
    condition = await _visible(db, owner)
    if condition is None:
        return
    usable = await db.scalar(select(ImageRow.id).where(ImageRow.id == image.id, condition))
    if usable is None:
        raise PermissionDenied(
            f"registry {image.registry_name!r} is not allowed in domain {owner.domain_name!r}",
            reason="REGISTRY_NOT_ALLOWED",
            metadata={"registry": image.registry_name},
        )


async def _installed(db: AsyncSession, rows: Sequence[ImageRow]) -> dict[str, list[str]]:
    """image key -> ids of connected agents that have it."""
    wanted = {image_key(r.canonical, r.architecture) for r in rows}
    agents = await db.execute(
        select(AgentRow.id, AgentRow.images).where(AgentRow.status.in_(CONNECTED))
    )
    holders: dict[str, list[str]] = defaultdict(list)
    for agent_id, images in agents:
        for key in set(images) & wanted:
            holders[key].append(agent_id)
    return {k: sorted(v) for k, v in holders.items()}


async def _views(db: AsyncSession, rows: Sequence[ImageRow], with_agents: bool) -> list[ImageView]:
    aliases: dict[uuid.UUID, list[str]] = defaultdict(list)
    if rows:
        found = await db.execute(
            select(ImageAliasRow.image_id, ImageAliasRow.alias)
            .where(ImageAliasRow.image_id.in_([r.id for r in rows]))
            .order_by(ImageAliasRow.alias)
        )
        for image_id, alias in found:
            aliases[image_id].append(alias)
    holders = await _installed(db, rows) if with_agents else {}
    return [
        ImageView(r, aliases[r.id], holders.get(image_key(r.canonical, r.architecture), []))
        for r in rows
    ]


async def _in_group(db: AsyncSession, group: str) -> list[str]:
    rows = await db.execute(select(AgentRow.images).where(AgentRow.scaling_group == group))
    return sorted({key for (images,) in rows for key in images})


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def list_images(
    db: AsyncSession,
    p: Principal,
    filters: ImageFilters,
    page_size: int,
    page_token: str,
    with_agents: bool,
) -> tuple[list[ImageView], str]:
    query: Select[Any] = select(ImageRow)
    visible = await _visible(db, p)
    if visible is not None:
        query = query.where(visible)
    elif not filters.include_deleted:
        query = query.where(ImageRow.status == "ALIVE")
    if filters.architecture:
        query = query.where(ImageRow.architecture == filters.architecture)
    if filters.registry:
        query = query.where(ImageRow.registry_name == filters.registry)
    if filters.name_contains:
        query = query.where(ImageRow.canonical.like(_like(filters.name_contains), escape="\\"))
    if filters.image_type:
        query = query.where(ImageRow.image_type == filters.image_type)
    if filters.customized_only:
        query = query.where(ImageRow.owner_user_id == p.user_id)
    if filters.installed_in_scaling_group:
        keys = await _in_group(db, filters.installed_in_scaling_group)
        held = (ImageRow.canonical + "@" + ImageRow.architecture).in_(keys)
        query = query.where(held if keys else false())
    query_key = {"list": "images", **filters.__dict__}
    after = decode_token(page_token, query_key)
    position = tuple_(ImageRow.canonical, ImageRow.architecture)
    if after is not None:
        last = json.loads(after)
        query = query.where(position > tuple_(*last))
    query = query.order_by(ImageRow.canonical, ImageRow.architecture).limit(page_size + 1)
    rows = list((await db.execute(query)).scalars())
    token = ""
    if len(rows) > page_size:
        last_row = rows[page_size - 1]
        token = encode_token(json.dumps([last_row.canonical, last_row.architecture]), query_key)
    return await _views(db, rows[:page_size], with_agents), token


async def get_image(db: AsyncSession, p: Principal, image_id: uuid.UUID) -> ImageView:
    query = select(ImageRow).where(ImageRow.id == image_id)
    visible = await _visible(db, p)
    if visible is not None:
        query = query.where(visible)
    row = (await db.execute(query)).scalar_one_or_none()
    if row is None:
        raise image_not_found()
    return (await _views(db, [row], with_agents=True))[0]


async def resolve_visible(
    db: AsyncSession, p: Principal, reference: str, architecture: str
) -> ImageView:
    row = await resolve_image(db, reference, architecture)
    return await get_image(db, p, row.id)


async def alias_image(db: AsyncSession, p: Principal, alias: str, image_id: uuid.UUID) -> ImageView:
    require_superadmin(p, Access.WRITE)
    row = await db.get(ImageRow, image_id)
    if row is None:
        raise image_not_found()
    current = await db.get(ImageAliasRow, alias, with_for_update=True)
    if current is not None and current.image_id != image_id:
        raise AlreadyExists(f"alias {alias!r} points at another image; dealias it first")
    if current is None:
        db.add(ImageAliasRow(alias=alias, image_id=image_id))
        await db.flush()
    return (await _views(db, [row], with_agents=False))[0]


async def dealias_image(db: AsyncSession, p: Principal, alias: str) -> None:
    require_superadmin(p, Access.WRITE)
    removed = await db.execute(
        delete(ImageAliasRow).where(ImageAliasRow.alias == alias).returning(ImageAliasRow.alias)
    )
    if removed.first() is None:
        raise NotFound(f"alias {alias!r} not found")


async def forget_image(db: AsyncSession, p: Principal, image_id: uuid.UUID) -> ImageView:
    """Mark the image DELETED (idempotent). Superadmins, or the owner of a customized image."""
    row = await db.get(ImageRow, image_id, with_for_update=True)
    if row is None:
        raise image_not_found()
    if not p.is_superadmin and row.owner_user_id != p.user_id:
        # An image the caller cannot see is not found; a visible one is refused.
        await get_image(db, p, image_id)
        require_superadmin(p, Access.WRITE)
    row.status = "DELETED"
    await db.flush()
    # modified_at is set by the database.
    await db.refresh(row)
    return (await _views(db, [row], with_agents=False))[0]
