"""Rescanning registries into the image catalogue (ImageService.RescanImages).

Every tag of every repository in scope becomes one ImageRow per architecture:
canonical "<registry host>/<repository>:<tag>", digest = the config digest
(what dockerd reports as the image id, so agents' reports match), labels
from the config blob, is_local false. A rescan of an unchanged registry
changes nothing but modified_at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bai.common.errors import InvalidArgument, NotFound
from bai.manager.agents.images import ReportedImage, upsert_reported
from bai.manager.config import RegistryConfig
from bai.manager.images.registries import Registries, registry_host
from bai.manager.images.registry_api import RegistryApi

SCANNED_TYPES = ("docker",)


@dataclass(frozen=True)
class RescanScope:
    registry: str = ""
    project: str = ""
    # "<project>/<name>" or "<project>/<name>:<tag>".
    reference: str = ""


@dataclass
class RescanResult:
    images: list[ReportedImage]


def in_projects(repository: str, projects: Sequence[str]) -> bool:
    return not projects or any(repository.startswith(p.strip("/") + "/") for p in projects)


def split_reference(reference: str) -> tuple[str, str]:
    """ "stable/python:3.11" -> ("stable/python", "3.11"); no tag -> every tag ("")."""
    slash, colon = reference.rfind("/"), reference.rfind(":")
    if colon > slash:
        return reference[:colon], reference[colon + 1 :]
    return reference, ""


def selected_registries(registries: Registries, scope: RescanScope) -> dict[str, RegistryConfig]:
    if scope.registry:
        config = registries.get(scope.registry)
        if config is None:
            raise NotFound(
                f"registry {scope.registry!r} is not configured",
                reason="REFERENCE_NOT_FOUND",
                metadata={"registry": scope.registry},
            )
        if config.type not in SCANNED_TYPES:
            raise InvalidArgument.field(
                "registry", f"registries of type {config.type!r} are not scanned"
            )
        return {scope.registry: config}
    return {name: c for name, c in registries.items() if c.type in SCANNED_TYPES}


async def scan_registry(
    name: str, config: RegistryConfig, scope: RescanScope
) -> list[ReportedImage]:
    api = RegistryApi(config.url, config.username, config.password, config.ssl_verify)
    wanted_tag = ""
    if scope.reference:
        repository, wanted_tag = split_reference(scope.reference)
        repositories = [repository]
    else:
        projects = [scope.project] if scope.project else config.project
        repositories = [r for r in await api.repositories() if in_projects(r, projects)]
    host = registry_host(config)
    found: list[ReportedImage] = []
    for repository in sorted(repositories):
        tags = [wanted_tag] if wanted_tag else await api.tags(repository)
        for tag in sorted(tags):
            for image in await api.images(repository, tag):
                found.append(
                    ReportedImage(
                        canonical=f"{host}/{repository}:{tag}",
                        architecture=image.architecture,
                        digest=image.digest,
                        size_bytes=image.size_bytes,
                        labels=image.labels,
                        registry=name,
                    )
                )
    return found


async def rescan(
    sessions: async_sessionmaker[AsyncSession], registries: Registries, scope: RescanScope
) -> RescanResult:
    """Scan the registries in scope, then store what was found in one transaction."""
    found: list[ReportedImage] = []
    for name, config in sorted(selected_registries(registries, scope).items()):
        found.extend(await scan_registry(name, config, scope))
    async with sessions() as db, db.begin():
        await upsert_reported(db, found)
    return RescanResult(found)
