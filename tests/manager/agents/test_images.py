"""The image catalogue: agent reports, resolution for new sessions, ImageService."""

from __future__ import annotations

import uuid

import grpc
import pytest

from bai.api.manager.v1 import image_pb2, image_pb2_grpc
from bai.common.errors import NotFound
from bai.manager.agents.images import ReportedImage, resolve_image, upsert_reported
from bai.manager.db.compute import ImageRow
from bai.manager.db.identity import DomainRow
from tests.manager.agents.fake_agent import RegistryClient, registration
from tests.manager.callers import invoke, make_caller, make_domain, refused, superadmin
from tests.manager.fixtures import ManagerHandle, unique
from tests.rpc_errors import reason_of

Stub = image_pb2_grpc.ImageServiceStub


async def report(manager: ManagerHandle, *images: ReportedImage) -> None:
    async with manager.ctx.sessions() as db, db.begin():
        await upsert_reported(db, images)


async def test_resolve_by_canonical_name_tag_and_alias(manager: ManagerHandle) -> None:
    project = unique("proj")
    canonical = f"cr.example.org/{project}/python:3.12"
    await report(
        manager,
        ReportedImage(canonical, "x86_64", digest="sha256:01"),
        ReportedImage(canonical, "aarch64", digest="sha256:02"),
    )
    async with manager.ctx.sessions() as db:
        by_canonical = await resolve_image(db, canonical, "")
        assert by_canonical.architecture == "x86_64"
        by_suffix = await resolve_image(db, f"{project}/python:3.12", "aarch64")
        assert by_suffix.digest == "sha256:02"
        with pytest.raises(NotFound) as info:
            await resolve_image(db, f"{project}/python:9.9", "x86_64")
        assert info.value.reason == "IMAGE_NOT_FOUND"

    admin = await superadmin(manager)
    alias = unique("py")
    async with manager.channel() as channel:
        await invoke(
            channel,
            Stub,
            admin,
            "AliasImage",
            image_pb2.AliasImageRequest(alias=alias, image_id=str(by_canonical.id)),
        )
    async with manager.ctx.sessions() as db:
        # An alias names the image in every architecture.
        assert (await resolve_image(db, alias, "aarch64")).digest == "sha256:02"


async def test_an_ambiguous_short_name_is_not_resolved(manager: ManagerHandle) -> None:
    name = unique("dup")
    await report(
        manager,
        ReportedImage(f"a.example.org/x/{name}:1", "x86_64"),
        ReportedImage(f"b.example.org/x/{name}:1", "x86_64"),
    )
    async with manager.ctx.sessions() as db:
        with pytest.raises(NotFound, match="several"):
            await resolve_image(db, f"{name}:1", "x86_64")


async def test_a_report_refreshes_but_never_revives(manager: ManagerHandle) -> None:
    canonical = unique("cr.example.org/x/refresh") + ":1"
    await report(manager, ReportedImage(canonical, "x86_64", digest="sha256:01", size_bytes=5))
    async with manager.ctx.sessions() as db, db.begin():
        row = await resolve_image(db, canonical, "x86_64")
        row.status = "DELETED"
    await report(manager, ReportedImage(canonical, "x86_64", digest="sha256:02"))
    async with manager.ctx.sessions() as db:
        with pytest.raises(NotFound):
            await resolve_image(db, canonical, "x86_64")
        stored = await db.get(ImageRow, row.id)
    assert stored is not None
    assert (stored.digest, stored.size_bytes, stored.status) == ("sha256:02", 5, "DELETED")


async def test_image_service_lists_gets_aliases_and_forgets(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    admin = await superadmin(manager)
    canonical = unique("cr.backend.ai/stable/svc") + ":1.0"
    agent_id = unique("i")
    client = RegistryClient(channel)
    await client.register(registration(agent_id, images=[canonical]))
    try:
        listed = await invoke(
            channel,
            Stub,
            admin,
            "ListImages",
            image_pb2.ListImagesRequest(
                name_contains=canonical.split("/")[-1], include_installed_agents=True
            ),
        )
        (image,) = listed.images
        assert image.canonical == canonical and image.registry == "cr.backend.ai"
        assert (image.project, image.tag) == ("stable", "1.0")
        assert list(image.installed_agent_ids) == [agent_id]
        assert [p.name for p in image.service_ports] == [
            "jupyter",
            "ttyd",
        ]  # sshd: only with the feature
        for group, expected in (("default", [canonical]), (unique("sg"), [])):
            in_group = await invoke(
                channel,
                Stub,
                admin,
                "ListImages",
                image_pb2.ListImagesRequest(
                    name_contains=canonical, installed_in_scaling_group=group
                ),
            )
            assert [i.canonical for i in in_group.images] == expected

        got = await invoke(
            channel,
            Stub,
            admin,
            "GetImage",
            image_pb2.GetImageRequest(reference=canonical.split("/", 1)[1]),
        )
        assert got.image.id == image.id

        alias = unique("svc")
        request = image_pb2.AliasImageRequest(alias=alias, image_id=image.id)
        await invoke(channel, Stub, admin, "AliasImage", request)
        again = await invoke(channel, Stub, admin, "AliasImage", request)
        assert alias in again.image.aliases
        other_name = unique("cr.backend.ai/stable/other") + ":1"
        await report(manager, ReportedImage(other_name, "x86_64"))
        other = await invoke(
            channel, Stub, admin, "GetImage", image_pb2.GetImageRequest(reference=other_name)
        )
        taken = await refused(
            invoke(
                channel,
                Stub,
                admin,
                "AliasImage",
                image_pb2.AliasImageRequest(alias=alias, image_id=other.image.id),
            )
        )
        assert taken.code() == grpc.StatusCode.ALREADY_EXISTS
        await invoke(
            channel, Stub, admin, "DealiasImage", image_pb2.DealiasImageRequest(alias=alias)
        )
        gone = await refused(
            invoke(channel, Stub, admin, "DealiasImage", image_pb2.DealiasImageRequest(alias=alias))
        )
        assert gone.code() == grpc.StatusCode.NOT_FOUND

        forget = image_pb2.ForgetImageRequest(image_id=image.id)
        forgotten = await invoke(channel, Stub, admin, "ForgetImage", forget)
        assert forgotten.image.status == image_pb2.IMAGE_STATUS_DELETED
        await invoke(channel, Stub, admin, "ForgetImage", forget)
        missing = await refused(
            invoke(
                channel,
                Stub,
                admin,
                "GetImage",
                image_pb2.GetImageRequest(reference=canonical),
            )
        )
        assert reason_of(missing) == "IMAGE_NOT_FOUND"
    finally:
        await client.close()


async def test_users_see_images_of_their_domains_registries(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    domain = await make_domain(manager)
    registry = unique("reg") + ".example.org"
    async with manager.ctx.sessions() as db, db.begin():
        row = await db.get(DomainRow, domain)
        assert row is not None
        row.allowed_docker_registries = [registry]
    allowed = f"{registry}/x/ok:1"
    hidden = unique("other.example.org/x/no") + ":1"
    await report(manager, ReportedImage(allowed, "x86_64"), ReportedImage(hidden, "x86_64"))
    user = await make_caller(manager, "user", domain)

    listed = await invoke(
        channel, Stub, user, "ListImages", image_pb2.ListImagesRequest(page_size=1000)
    )
    names = {i.canonical for i in listed.images}
    assert allowed in names and hidden not in names
    not_visible = await refused(
        invoke(channel, Stub, user, "GetImage", image_pb2.GetImageRequest(reference=hidden))
    )
    assert reason_of(not_visible) == "IMAGE_NOT_FOUND"
    image_id = next(i.id for i in listed.images if i.canonical == allowed)
    denied = await refused(
        invoke(
            channel,
            Stub,
            user,
            "AliasImage",
            image_pb2.AliasImageRequest(alias="x", image_id=image_id),
        )
    )
    assert reason_of(denied) == "ROLE_FORBIDDEN"
    forget = await refused(
        invoke(channel, Stub, user, "ForgetImage", image_pb2.ForgetImageRequest(image_id=image_id))
    )
    assert reason_of(forget) == "ROLE_FORBIDDEN"
    unknown = await refused(
        invoke(
            channel,
            Stub,
            user,
            "ForgetImage",
            image_pb2.ForgetImageRequest(image_id=str(uuid.uuid4())),
        )
    )
    assert reason_of(unknown) == "IMAGE_NOT_FOUND"


async def test_paging_and_bad_input(manager: ManagerHandle, channel: grpc.aio.Channel) -> None:
    admin = await superadmin(manager)
    prefix = unique("cr.example.org/page/img")
    await report(manager, *(ReportedImage(f"{prefix}:{n}", "x86_64") for n in range(3)))
    seen: list[str] = []
    token = ""
    while True:
        page = await invoke(
            channel,
            Stub,
            admin,
            "ListImages",
            image_pb2.ListImagesRequest(page_size=2, page_token=token, name_contains=prefix),
        )
        seen.extend(i.canonical for i in page.images)
        if not (token := page.next_page_token):
            break
    assert seen == [f"{prefix}:{n}" for n in range(3)]

    bad = await refused(
        invoke(channel, Stub, admin, "GetImage", image_pb2.GetImageRequest(image_id="nope"))
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    both = image_pb2.RescanImagesRequest(project="stable", reference="stable/python")
    rescan = await refused(invoke(channel, Stub, admin, "RescanImages", both))
    assert rescan.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(rescan) == "INVALID_FIELD"
