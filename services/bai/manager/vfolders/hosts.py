"""Storage hosts: which the caller may use (allowed_vfolder_hosts) and what they are."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bai.api.manager.v1 import domain_pb2
from bai.api.manager.v1 import vfolder_pb2 as pb
from bai.api.storage.v1 import storage_pb2 as spb
from bai.common.errors import BaiError
from bai.manager.auth.access import can_read_domain_objects
from bai.manager.auth.principal import Principal
from bai.manager.db.identity import DomainRow, KeypairRow, ProjectRow
from bai.manager.db.policies import KeypairResourcePolicyRow
from bai.manager.db.storage import VFolderRow
from bai.manager.vfolders.permissions import HostPermissions, merge_host_permissions
from bai.manager.vfolders.storage_client import StorageProxies

log = logging.getLogger(__name__)

CAPABILITY_NAMES = {
    spb.VOLUME_CAPABILITY_VFOLDER: "vfolder",
    spb.VOLUME_CAPABILITY_QUOTA: "quota",
    spb.VOLUME_CAPABILITY_METRIC: "metric",
    spb.VOLUME_CAPABILITY_FAST_SIZE: "fast-size",
    spb.VOLUME_CAPABILITY_FAST_FS_SIZE: "fast-fs-size",
    spb.VOLUME_CAPABILITY_FAST_SCAN: "fast-scan",
    spb.VOLUME_CAPABILITY_FAST_CLONE: "fast-clone",
}


async def allowed_hosts(
    db: AsyncSession, p: Principal, project_ids: Iterable[uuid.UUID] | None = None
) -> HostPermissions:
    """Host permissions of the caller: their domain's, the projects' (default: all
    of theirs) and their keypair policy's (every keypair's when they logged in
    with a token)."""
    projects = list(p.project_ids if project_ids is None else project_ids)
    sources: list[dict[str, Any]] = []
    domain = await db.scalar(
        select(DomainRow.allowed_vfolder_hosts).where(DomainRow.name == p.domain_name)
    )
    sources.append(domain or {})
    if projects:
        rows = await db.scalars(
            select(ProjectRow.allowed_vfolder_hosts).where(ProjectRow.id.in_(projects))
        )
        sources.extend(rows)
    keypairs = select(KeypairRow.resource_policy).where(KeypairRow.user_id == p.user_id)
    if p.access_key:
        keypairs = keypairs.where(KeypairRow.access_key == p.access_key)
    policies = await db.scalars(
        select(KeypairResourcePolicyRow.allowed_vfolder_hosts).where(
            KeypairResourcePolicyRow.name.in_(keypairs.scalar_subquery())
        )
    )
    sources.extend(policies)
    return merge_host_permissions(sources)


async def allowed_hosts_for(db: AsyncSession, p: Principal, row: VFolderRow) -> HostPermissions:
    """For a project folder the project's hosts count; for a user folder all of
    the caller's projects'."""
    projects = [row.project_id] if row.project_id is not None else None
    return await allowed_hosts(db, p, projects)


async def list_hosts(
    db: AsyncSession, p: Principal, proxies: StorageProxies
) -> pb.ListVFolderHostsResponse:
    allowed = await allowed_hosts(db, p)
    admin = can_read_domain_objects(p, p.domain_name)
    hosts: list[pb.VFolderHost] = []
    for proxy in proxies.names():
        try:
            volumes = (await proxies.call(proxy, "ListVolumes", spb.ListVolumesRequest())).volumes
        except BaiError as exc:
            # One proxy down must not hide the others' hosts.
            log.warning("storage proxy %s did not list its volumes: %s", proxy, exc.message)
            continue
        for volume in volumes:
            name = f"{proxy}:{volume.name}"
            if name not in allowed:
                continue
            host = pb.VFolderHost(
                name=name,
                backend=volume.backend,
                capabilities=[CAPABILITY_NAMES.get(c, "") for c in volume.capabilities],
                permissions=domain_pb2.HostPermissions(permissions=sorted(allowed[name])),
            )
            if admin:
                await _add_fs_usage(proxies, proxy, volume.name, host)
            hosts.append(host)
    default = proxies.default_host if proxies.default_host in allowed else ""
    return pb.ListVFolderHostsResponse(hosts=hosts, default_host=default)


async def _add_fs_usage(proxies: StorageProxies, proxy: str, volume: str, host: Any) -> None:
    try:
        usage = await proxies.call(proxy, "GetFsUsage", spb.GetFsUsageRequest(volume=volume))
    except BaiError as exc:
        log.warning("storage proxy %s did not report usage of %s: %s", proxy, volume, exc.message)
        return
    host.capacity_bytes, host.used_bytes = usage.capacity_bytes, usage.used_bytes
