"""The image catalogue as agents report it, and image resolution for new sessions.

Agents report the images present on their node (at registration, in
snapshots and with pull events); each (canonical, architecture) becomes one
ImageRow, and the agent row lists "<canonical>@<architecture>" of what it
holds. A report never revives a forgotten (DELETED) image: forgetting is an
admin's decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from bai.common.errors import NotFound
from bai.manager.db.compute import ImageAliasRow, ImageRow

DEFAULT_ARCHITECTURE = "x86_64"
ROLE_LABEL = "ai.backend.role"


@dataclass(frozen=True)
class ReportedImage:
    """One image an agent has (InstalledImage, or a finished pull)."""

    canonical: str
    architecture: str
    digest: str = ""
    size_bytes: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    is_local: bool = False
    # Registry name, set by rescans (which know it); "": the registry part of the
    # canonical name for a new row, and what is stored for a known one.
    registry: str = ""


@dataclass(frozen=True)
class CanonicalName:
    registry: str
    project: str
    name: str
    tag: str


def split_canonical(canonical: str) -> CanonicalName:
    """ "cr.backend.ai/stable/python:3.12" -> registry, project, name, tag.

    A first component without a dot, colon or "localhost" is not a registry
    (Docker's rule): "stable/python:3.12" has registry "".
    """
    rest, tag = canonical, "latest"
    slash = canonical.rfind("/")
    colon = canonical.rfind(":")
    if colon > slash:
        rest, tag = canonical[:colon], canonical[colon + 1 :]
    parts = rest.split("/")
    registry = ""
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry = parts.pop(0)
    name = parts.pop() if parts else ""
    return CanonicalName(registry, "/".join(parts), name, tag)


def image_key(canonical: str, architecture: str) -> str:
    """How agents.images names an image."""
    return f"{canonical}@{architecture}"


def image_type_of(labels: dict[str, str]) -> str:
    """ai.backend.role: COMPUTE (default), SYSTEM or INFERENCE/SERVICE."""
    role = labels.get(ROLE_LABEL, "").upper()
    if role == "SYSTEM":
        return "system"
    if role in ("INFERENCE", "SERVICE"):
        return "service"
    return "compute"


async def upsert_reported(db: AsyncSession, images: Iterable[ReportedImage]) -> None:
    """Insert new images and refresh digest, size and labels of known ones."""
    for image in images:
        if not image.canonical:
            continue
        values = {
            "canonical": image.canonical,
            "architecture": image.architecture or DEFAULT_ARCHITECTURE,
            "registry_name": image.registry or split_canonical(image.canonical).registry,
            "digest": image.digest,
            "size_bytes": max(0, image.size_bytes),
            "labels": dict(image.labels),
            "image_type": image_type_of(image.labels),
            "is_local": image.is_local,
        }
        stmt = insert(ImageRow).values(values)
        changed: dict[str, Any] = {"modified_at": func.now()}
        # A report that does not know the digest, size or labels (a pull event
        # carries none) keeps what is known.
        if image.labels:
            changed["labels"] = stmt.excluded.labels
            changed["image_type"] = stmt.excluded.image_type
        if image.registry:
            # A registry rescan knows the image is pullable, whatever agents said.
            changed["registry"] = stmt.excluded.registry
            changed["is_local"] = stmt.excluded.is_local
        elif image.is_local:
            # An agent built or imported it: it exists in no registry we know of.
            changed["is_local"] = True
        if image.digest:
            changed["digest"] = stmt.excluded.digest
        if image.size_bytes > 0:
            changed["size_bytes"] = stmt.excluded.size_bytes
        await db.execute(
            stmt.on_conflict_do_update(index_elements=["canonical", "architecture"], set_=changed)
        )


def image_keys(images: Iterable[ReportedImage]) -> list[str]:
    return sorted({image_key(i.canonical, i.architecture or DEFAULT_ARCHITECTURE) for i in images})


def _not_found(reference: str, architecture: str, detail: str = "") -> NotFound:
    message = f"image {reference!r} ({architecture}) not found"
    return NotFound(message + (f": {detail}" if detail else ""), reason="IMAGE_NOT_FOUND")


# Built once, parameters apart: every session create runs it.
_BY_CANONICAL = select(ImageRow).where(
    ImageRow.canonical == bindparam("canonical"),
    ImageRow.architecture == bindparam("architecture"),
    ImageRow.status == "ALIVE",
)


async def _by_canonical(db: AsyncSession, canonical: str, architecture: str) -> ImageRow | None:
    params = {"canonical": canonical, "architecture": architecture}
    row: ImageRow | None = (await db.execute(_BY_CANONICAL, params)).scalar_one_or_none()
    return row


async def resolve_image(db: AsyncSession, reference: str, architecture: str) -> ImageRow:
    """The ALIVE image `reference` names for `architecture` ("" is x86_64).

    Tried in order: the canonical name; an alias (which names an image, and so
    its canonical name, in any architecture); "name:tag" or "project/name:tag"
    as the end of exactly one canonical name. Raises IMAGE_NOT_FOUND.
    """
    architecture = architecture or DEFAULT_ARCHITECTURE
    if not reference:
        raise _not_found(reference, architecture)
    row = await _by_canonical(db, reference, architecture)
    if row is not None:
        return row
    aliased = await db.scalar(
        select(ImageRow.canonical)
        .join(ImageAliasRow, ImageAliasRow.image_id == ImageRow.id)
        .where(ImageAliasRow.alias == reference)
    )
    if aliased is not None:
        row = await _by_canonical(db, aliased, architecture)
        if row is None:
            raise _not_found(reference, architecture, f"alias of {aliased!r}")
        return row
    suffix = "/" + reference.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = (
        select(ImageRow)
        .where(
            ImageRow.canonical.like("%" + suffix, escape="\\"),
            ImageRow.architecture == architecture,
            ImageRow.status == "ALIVE",
        )
        .limit(2)
    )
    rows: Sequence[ImageRow] = (await db.execute(query)).scalars().all()
    if len(rows) > 1:
        raise _not_found(reference, architecture, "several images match; use the canonical name")
    if not rows:
        raise _not_found(reference, architecture)
    return rows[0]
