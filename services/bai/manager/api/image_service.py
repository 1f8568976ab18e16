"""ImageService: thin edge over bai.manager.agents.image_catalog."""

from __future__ import annotations

import re
from typing import Any

from bai.api.common.v1 import session_pb2
from bai.api.manager.v1 import image_pb2, image_pb2_grpc
from bai.common import image_labels
from bai.common.errors import Unimplemented
from bai.common.slots import canonical
from bai.manager.agents import image_catalog
from bai.manager.agents.images import split_canonical
from bai.manager.api.convert import timestamp
from bai.manager.api.rpc import Call, unary
from bai.manager.auth.access import Access, require_superadmin
from bai.manager.context import ManagerContext
from bai.manager.images import pulls, rescan
from bai.manager.validation import Violations

ALIAS_PATTERN = re.compile(r"^[A-Za-z0-9._:/-]{1,128}$")
IMAGE_TYPES = {
    image_pb2.IMAGE_TYPE_COMPUTE: "compute",
    image_pb2.IMAGE_TYPE_SYSTEM: "system",
    image_pb2.IMAGE_TYPE_SERVICE: "service",
}
IMAGE_TYPES_TO_PROTO = {v: k for k, v in IMAGE_TYPES.items()}
ARCHITECTURES = ("", "x86_64", "aarch64")


def _protocol(name: str) -> Any:
    full = "APP_PROTOCOL_" + name.upper()
    return session_pb2.AppProtocol.Value(full) if full in session_pb2.AppProtocol.keys() else 0


def _resource_limits(labels: dict[str, str]) -> list[image_pb2.ImageResourceLimit]:
    low, high = image_labels.readable_resource_bounds(labels)
    return [
        image_pb2.ImageResourceLimit(
            slot=slot,
            min=canonical(low[slot]) if slot in low else "",
            max=canonical(high[slot]) if slot in high else "",
        )
        for slot in sorted({*low, *high})
    ]


def image_to_proto(view: image_catalog.ImageView) -> image_pb2.Image:
    row, labels = view.row, view.row.labels
    inference = image_labels.endpoint_port_names(labels)
    parts = split_canonical(row.canonical)
    return image_pb2.Image(
        id=str(row.id),
        canonical=row.canonical,
        registry=row.registry_name,
        project=parts.project,
        name=parts.name,
        tag=parts.tag,
        architecture=row.architecture,
        digest=row.digest,
        size_bytes=row.size_bytes,
        type=IMAGE_TYPES_TO_PROTO.get(row.image_type, image_pb2.IMAGE_TYPE_UNSPECIFIED),
        status=image_pb2.IMAGE_STATUS_DELETED
        if row.status == "DELETED"
        else image_pb2.IMAGE_STATUS_ALIVE,
        labels=labels,
        service_ports=[
            session_pb2.ServicePort(
                name=port.name,
                protocol=_protocol(port.protocol),
                container_ports=port.container_ports,
                is_inference=port.name in inference,
            )
            for port in image_labels.offered_service_ports(labels)
        ],
        resource_limits=_resource_limits(labels),
        supported_accelerators=image_labels.accelerators(labels),
        features=image_labels.features(labels),
        aliases=view.aliases,
        is_local=row.is_local,
        owner_user_id=str(row.owner_user_id) if row.owner_user_id else "",
        installed_agent_ids=view.installed_agent_ids,
        created_at=timestamp(row.created_at),
        updated_at=timestamp(row.modified_at),
    )


def _architecture(v: Violations, value: str) -> None:
    if value not in ARCHITECTURES:
        v.add("architecture", "must be x86_64 or aarch64")


class ImageServicer(image_pb2_grpc.ImageServiceServicer):
    SERVICE = "bai.api.manager.v1.ImageService"

    def __init__(self, ctx: ManagerContext) -> None:
        self.ctx = ctx
        self.pulls = pulls.PullRunner(ctx.agent_pool)

    @unary()
    async def ListImages(
        self, request: image_pb2.ListImagesRequest, call: Call
    ) -> image_pb2.ListImagesResponse:
        v = Violations()
        size = v.page_size(request.page_size)
        _architecture(v, request.architecture)
        v.text("registry", request.registry, 256)
        v.text("name_contains", request.name_contains, 256)
        if request.type not in IMAGE_TYPES and request.type != image_pb2.IMAGE_TYPE_UNSPECIFIED:
            v.add("type", "must be a known image type")
        if request.installed_in_scaling_group:
            v.name("installed_in_scaling_group", request.installed_in_scaling_group)
        v.raise_if_any()
        filters = image_catalog.ImageFilters(
            architecture=request.architecture,
            registry=request.registry,
            name_contains=request.name_contains,
            image_type=IMAGE_TYPES.get(request.type, ""),
            installed_in_scaling_group=request.installed_in_scaling_group,
            include_deleted=request.include_deleted,
            customized_only=request.customized_only,
        )
        async with self.ctx.sessions() as db:
            views, token = await image_catalog.list_images(
                db,
                call.principal,
                filters,
                size,
                request.page_token,
                request.include_installed_agents,
            )
        return image_pb2.ListImagesResponse(
            images=[image_to_proto(view) for view in views], next_page_token=token
        )

    @unary()
    async def GetImage(
        self, request: image_pb2.GetImageRequest, call: Call
    ) -> image_pb2.GetImageResponse:
        v = Violations()
        image_id = None
        if request.image_id:
            image_id = v.uuid("image_id", request.image_id)
            if request.reference:
                v.add("reference", "set either image_id or reference, not both")
        else:
            v.text("reference", request.reference, 512, required=True)
        _architecture(v, request.architecture)
        v.raise_if_any()
        async with self.ctx.sessions() as db:
            if image_id is not None:
                view = await image_catalog.get_image(db, call.principal, image_id)
            else:
                view = await image_catalog.resolve_visible(
                    db, call.principal, request.reference, request.architecture
                )
        return image_pb2.GetImageResponse(image=image_to_proto(view))

    @unary(audit=("image", "alias"))
    async def AliasImage(
        self, request: image_pb2.AliasImageRequest, call: Call
    ) -> image_pb2.AliasImageResponse:
        v = Violations()
        if not ALIAS_PATTERN.match(request.alias):
            v.add("alias", "must be 1-128 characters of [A-Za-z0-9._:/-]")
        image_id = v.uuid("image_id", request.image_id)
        v.raise_if_any()
        assert image_id is not None
        call.entity_id = request.alias
        async with self.ctx.sessions() as db, db.begin():
            view = await image_catalog.alias_image(db, call.principal, request.alias, image_id)
        return image_pb2.AliasImageResponse(image=image_to_proto(view))

    @unary(audit=("image", "dealias"))
    async def DealiasImage(
        self, request: image_pb2.DealiasImageRequest, call: Call
    ) -> image_pb2.DealiasImageResponse:
        v = Violations()
        if not ALIAS_PATTERN.match(request.alias):
            v.add("alias", "must be 1-128 characters of [A-Za-z0-9._:/-]")
        v.raise_if_any()
        call.entity_id = request.alias
        async with self.ctx.sessions() as db, db.begin():
            await image_catalog.dealias_image(db, call.principal, request.alias)
        return image_pb2.DealiasImageResponse()

    @unary(audit=("image", "forget"))
    async def ForgetImage(
        self, request: image_pb2.ForgetImageRequest, call: Call
    ) -> image_pb2.ForgetImageResponse:
        v = Violations()
        image_id = v.uuid("image_id", request.image_id)
        v.raise_if_any()
        assert image_id is not None
        call.entity_id = request.image_id
        if request.remove_from_agents:
            raise Unimplemented("removing images from agents arrives with background tasks")
        async with self.ctx.sessions() as db, db.begin():
            view = await image_catalog.forget_image(db, call.principal, image_id)
        return image_pb2.ForgetImageResponse(image=image_to_proto(view))

    @unary(audit=("image", "rescan"))
    async def RescanImages(
        self, request: image_pb2.RescanImagesRequest, call: Call
    ) -> image_pb2.RescanImagesResponse:
        require_superadmin(call.principal, Access.WRITE)
        v = Violations()
        v.text("registry", request.registry, 256)
        v.text("project", request.project, 256)
        v.text("reference", request.reference, 512)
        if request.reference and request.project:
            v.add("reference", "set either project or reference, not both")
        v.raise_if_any()
        call.entity_id = request.registry or "*"
        scope = rescan.RescanScope(request.registry, request.project, request.reference)
        # BackgroundTaskService is not served yet: the rescan runs within the call
        # and the task id stays empty.
        await rescan.rescan(self.ctx.sessions, self.ctx.config.registries, scope)
        return image_pb2.RescanImagesResponse(task_id="")

    @unary(audit=("image", "pull"))
    async def PullImage(
        self, request: image_pb2.PullImageRequest, call: Call
    ) -> image_pb2.PullImageResponse:
        require_superadmin(call.principal, Access.WRITE)
        v = Violations()
        image_id = v.uuid("image_id", request.image_id)
        if request.scaling_group:
            v.name("scaling_group", request.scaling_group)
        for index, agent_id in enumerate(request.agent_ids):
            v.text(f"agent_ids[{index}]", agent_id, 64, required=True)
        v.raise_if_any()
        assert image_id is not None
        call.entity_id = request.image_id
        async with self.ctx.sessions() as db:
            targets = await pulls.pull_targets(
                db,
                self.ctx.config.registries,
                image_id,
                list(request.agent_ids),
                request.scaling_group,
            )
        # Progress and outcomes arrive as the agents' image events; BackgroundTaskService
        # is not served yet, so the task id stays empty.
        self.pulls.start(targets, force=request.force)
        return image_pb2.PullImageResponse(task_id="")
