"""DomainService: thin edge over bai.manager.admin.domains."""

from __future__ import annotations

from typing import Any

from bai.api.common.v1 import types_pb2
from bai.api.manager.v1 import domain_pb2, domain_pb2_grpc
from bai.manager.admin import domains
from bai.manager.api.convert import timestamp
from bai.manager.api.rpc import Call, unary
from bai.manager.context import ManagerContext
from bai.manager.db.identity import DomainRow
from bai.manager.validation import Violations


def domain_to_proto(row: DomainRow) -> domain_pb2.Domain:
    return domain_pb2.Domain(
        name=row.name,
        description=row.description,
        is_active=row.is_active,
        total_resource_slots=types_pb2.ResourceSlots(slots=row.total_resource_slots),
        allowed_vfolder_hosts={
            host: domain_pb2.HostPermissions(permissions=perms)
            for host, perms in row.allowed_vfolder_hosts.items()
        },
        allowed_docker_registries=row.allowed_docker_registries,
        created_at=timestamp(row.created_at),
        modified_at=timestamp(row.modified_at),
    )


def host_permissions(v: Violations, field: str, hosts: Any) -> dict[str, list[str]]:
    clean: dict[str, list[str]] = {}
    for host, perms in hosts.items():
        v.name(f"{field}[{host[:40]!r}]", host)
        for perm in perms.permissions:
            v.name(f"{field}[{host[:40]!r}].permissions", perm)
        clean[host] = sorted(set(perms.permissions))
    return clean


def domain_values(v: Violations, d: domain_pb2.Domain, fields: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if "description" in fields:
        v.text("domain.description", d.description, 1024)
        values["description"] = d.description
    if "is_active" in fields:
        values["is_active"] = d.is_active
    if "total_resource_slots" in fields:
        values["total_resource_slots"] = v.slots(
            "domain.total_resource_slots", d.total_resource_slots.slots
        )
    if "allowed_vfolder_hosts" in fields:
        values["allowed_vfolder_hosts"] = host_permissions(
            v, "domain.allowed_vfolder_hosts", d.allowed_vfolder_hosts
        )
    if "allowed_docker_registries" in fields:
        for i, reg in enumerate(d.allowed_docker_registries):
            v.text(f"domain.allowed_docker_registries[{i}]", reg, 256, required=True)
        values["allowed_docker_registries"] = list(d.allowed_docker_registries)
    return values


class DomainServicer(domain_pb2_grpc.DomainServiceServicer):
    SERVICE = "bai.api.manager.v1.DomainService"

    def __init__(self, ctx: ManagerContext) -> None:
        self.ctx = ctx

    @unary(audit=("domain", "create"))
    async def CreateDomain(
        self, request: domain_pb2.CreateDomainRequest, call: Call
    ) -> domain_pb2.CreateDomainResponse:
        v = Violations()
        v.name("domain.name", request.domain.name)
        v.request_id(request.request_id)
        fields = ["description", "total_resource_slots", "allowed_vfolder_hosts"]
        fields.append("allowed_docker_registries")
        values = domain_values(v, request.domain, fields)
        v.raise_if_any()
        # The target domain only once the call succeeds: a refused call is filed
        # under the caller's domain, not in another tenant's audit log.
        call.entity_id = request.domain.name
        values["name"] = request.domain.name
        values["is_active"] = True
        async with self.ctx.sessions() as db, db.begin():
            row = await domains.create_domain(db, call.principal, values)
        call.domain_name = row.name
        return domain_pb2.CreateDomainResponse(domain=domain_to_proto(row))

    @unary()
    async def GetDomain(
        self, request: domain_pb2.GetDomainRequest, call: Call
    ) -> domain_pb2.GetDomainResponse:
        v = Violations()
        v.name("name", request.name)
        v.raise_if_any()
        async with self.ctx.sessions() as db:
            row = await domains.get_domain(db, call.principal, request.name)
        return domain_pb2.GetDomainResponse(domain=domain_to_proto(row))

    @unary()
    async def ListDomains(
        self, request: domain_pb2.ListDomainsRequest, call: Call
    ) -> domain_pb2.ListDomainsResponse:
        v = Violations()
        size = v.page_size(request.page_size)
        v.raise_if_any()
        async with self.ctx.sessions() as db:
            rows, token = await domains.list_domains(db, call.principal, size, request.page_token)
        return domain_pb2.ListDomainsResponse(
            domains=[domain_to_proto(r) for r in rows], next_page_token=token
        )

    @unary(audit=("domain", "update"))
    async def UpdateDomain(
        self, request: domain_pb2.UpdateDomainRequest, call: Call
    ) -> domain_pb2.UpdateDomainResponse:
        v = Violations()
        v.name("domain.name", request.domain.name)
        fields = v.mask(request.update_mask.paths, domains.UPDATABLE)
        changes = domain_values(v, request.domain, fields)
        v.raise_if_any()
        call.entity_id = request.domain.name
        async with self.ctx.sessions() as db, db.begin():
            row = await domains.update_domain(db, call.principal, request.domain.name, changes)
        call.domain_name = row.name
        return domain_pb2.UpdateDomainResponse(domain=domain_to_proto(row))

    @unary(audit=("domain", "delete"))
    async def DeleteDomain(
        self, request: domain_pb2.DeleteDomainRequest, call: Call
    ) -> domain_pb2.DeleteDomainResponse:
        v = Violations()
        v.name("name", request.name)
        v.raise_if_any()
        call.entity_id = request.name
        async with self.ctx.sessions() as db, db.begin():
            await domains.delete_domain(db, call.principal, request.name)
        call.domain_name = request.name
        return domain_pb2.DeleteDomainResponse()
