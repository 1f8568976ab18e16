"""A fake ImageService (and BackgroundTaskService) for CLI tests: a real grpc server,
the image catalogue in memory.

It follows proto/bai/api/manager/v1/image.proto: ListImages (filters, ordering by
canonical then architecture, paging), GetImage (by id, or a canonical name,
"name:tag" or alias for an architecture, default x86_64), AliasImage, DealiasImage,
ForgetImage, RescanImages and PullImage with their error reasons, and the
credential checks and call log of tests.client.fakes. Like today's manager,
RescanImages and PullImage answer an empty task_id; with ``Catalogue.as_tasks`` they
(and ForgetImage with remove_from_agents) start a background task instead, which
WatchTask replays; a rescan of registry "broken.example" ends FAILED.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc

from bai.api.common.v1 import session_pb2
from bai.api.manager.v1 import bgtask_pb2, bgtask_pb2_grpc, image_pb2, image_pb2_grpc
from tests.client.fakes import Abort, Fake, fail, handler, invalid, page_of, serve

ALIAS = re.compile(r"^[A-Za-z0-9._:/-]{1,128}$")
REGISTRIES = ("cr.backend.ai", "bai.local", "broken.example")
AGENTS = {"i-ag1": "default", "i-ag2": "default", "i-ag3": "gpu"}
OWNER = "u-1"


def image_not_found(what: str) -> Abort:
    return fail(grpc.StatusCode.NOT_FOUND, f"image {what} not found", "IMAGE_NOT_FOUND")


@dataclass
class Catalogue:
    """In-memory images, aliases and background tasks shared by the servicers and tests."""

    fake: Fake
    images: dict[str, image_pb2.Image] = field(default_factory=dict)
    tasks: dict[str, list[bgtask_pb2.WatchTaskResponse]] = field(default_factory=dict)
    as_tasks: bool = False

    def add(self, canonical: str, architecture: str = "x86_64", **kw: Any) -> image_pb2.Image:
        registry, project, rest = canonical.split("/", 2)
        name, _, tag = rest.rpartition(":")
        image = image_pb2.Image(
            id=str(uuid.uuid4()),
            canonical=canonical,
            registry=registry,
            project=project,
            name=name,
            tag=tag,
            architecture=architecture,
            digest="sha256:" + uuid.uuid4().hex * 2,
            status=image_pb2.IMAGE_STATUS_ALIVE,
            **kw,
        )
        image.created_at.FromSeconds(1_700_000_000)
        image.updated_at.FromSeconds(1_700_000_000)
        self.images[image.id] = image
        return image

    def ordered(self) -> list[image_pb2.Image]:
        return sorted(self.images.values(), key=lambda i: (i.canonical, i.architecture))

    def resolve(self, reference: str, architecture: str) -> image_pb2.Image:
        for image in self.ordered():
            short = f"{image.project}/{image.name}:{image.tag}"
            names = {image.canonical, short, f"{image.name}:{image.tag}", *image.aliases}
            alive = image.status == image_pb2.IMAGE_STATUS_ALIVE
            if alive and reference in names and image.architecture == architecture:
                return image
        raise image_not_found(f"{reference} ({architecture})")

    def get(self, image_id: str) -> image_pb2.Image:
        if image_id not in self.images:
            raise image_not_found(image_id)
        return self.images[image_id]

    def start_task(self, kind: str, failure: str = "") -> str:
        """A finished task replayed by WatchTask: RUNNING 1/2, then DONE or FAILED."""
        task_id = str(uuid.uuid4())
        running = bgtask_pb2.BackgroundTask(
            id=task_id,
            kind=kind,
            status=bgtask_pb2.BACKGROUND_TASK_STATUS_RUNNING,
            current_progress=1,
            total_progress=2,
        )
        end = bgtask_pb2.BackgroundTask()
        end.CopyFrom(running)
        end.current_progress = 2
        if failure:
            end.status = bgtask_pb2.BACKGROUND_TASK_STATUS_FAILED
            end.errors.append(failure)
        else:
            end.status = bgtask_pb2.BACKGROUND_TASK_STATUS_DONE
            end.result["kind"] = kind
        self.tasks[task_id] = [
            bgtask_pb2.WatchTaskResponse(
                type=bgtask_pb2.BACKGROUND_TASK_EVENT_TYPE_UPDATED, task=running
            ),
            bgtask_pb2.WatchTaskResponse(
                type=bgtask_pb2.BACKGROUND_TASK_EVENT_TYPE_FAILED
                if failure
                else bgtask_pb2.BACKGROUND_TASK_EVENT_TYPE_DONE,
                task=end,
            ),
        ]
        return task_id

    def seed(self) -> None:
        """A small catalogue: python for two architectures (aliased "python", installed
        on two agents), a CUDA image, a system image and a customized image."""
        labels = {
            "ai.backend.kernelspec": "1",
            "ai.backend.resource.min.cpu": "1",
            "ai.backend.resource.min.mem": "268435456",
            "ai.backend.features": "batch query uid-match",
        }
        ports = [
            session_pb2.ServicePort(
                name="jupyter", protocol=session_pb2.APP_PROTOCOL_HTTP, container_ports=[8080]
            ),
            session_pb2.ServicePort(
                name="sshd", protocol=session_pb2.APP_PROTOCOL_TCP, container_ports=[2200]
            ),
        ]
        limits = [
            image_pb2.ImageResourceLimit(slot="cpu", min="1"),
            image_pb2.ImageResourceLimit(slot="mem", min="268435456", max="17179869184"),
        ]
        common: dict[str, Any] = {"type": image_pb2.IMAGE_TYPE_COMPUTE, "labels": labels}
        python = "cr.backend.ai/stable/python:3.12-ubuntu22.04"
        self.add(
            python,
            size_bytes=1610612736,
            service_ports=ports,
            resource_limits=limits,
            features=["batch", "query", "uid-match"],
            aliases=["python"],
            installed_agent_ids=["i-ag1", "i-ag2"],
            **common,
        )
        self.add(python, "aarch64", size_bytes=1503238553, aliases=["python"], **common)
        self.add(
            "cr.backend.ai/stable/pytorch:2.3-cuda12",
            size_bytes=8 << 30,
            supported_accelerators=["cuda"],
            installed_agent_ids=["i-ag3"],
            **common,
        )
        self.add(
            "cr.backend.ai/system/sftp:1.0", size_bytes=50 << 20, type=image_pb2.IMAGE_TYPE_SYSTEM
        )
        self.add(
            f"bai.local/customized/{OWNER}/mybox:20261127",
            size_bytes=2 << 30,
            is_local=True,
            owner_user_id=OWNER,
            **common,
        )


def _visible(image: image_pb2.Image, request: image_pb2.ListImagesRequest) -> bool:
    agents = list(image.installed_agent_ids)
    return all(
        (
            request.include_deleted or image.status == image_pb2.IMAGE_STATUS_ALIVE,
            not request.architecture or image.architecture == request.architecture,
            not request.registry or image.registry == request.registry,
            request.name_contains in image.canonical,
            not request.type or image.type == request.type,
            not request.customized_only or image.owner_user_id == OWNER,
            not request.installed_in_scaling_group
            or any(AGENTS[a] == request.installed_in_scaling_group for a in agents),
        )
    )


class FakeImages(image_pb2_grpc.ImageServiceServicer):
    SERVICE = "bai.api.manager.v1.ImageService"

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.fake = catalogue.fake

    @handler
    def ListImages(self, request: Any, context: Any) -> Any:
        found = []
        for image in self.catalogue.ordered():
            if _visible(image, request):
                listed = image_pb2.Image()
                listed.CopyFrom(image)
                if not request.include_installed_agents:
                    listed.ClearField("installed_agent_ids")
                found.append(listed)
        page, token = page_of(request, found)
        return image_pb2.ListImagesResponse(images=page, next_page_token=token)

    @handler
    def GetImage(self, request: Any, context: Any) -> Any:
        if request.architecture not in ("", "x86_64", "aarch64"):
            raise invalid("architecture", "must be x86_64 or aarch64")
        if request.image_id:
            return image_pb2.GetImageResponse(image=self.catalogue.get(request.image_id))
        if not request.reference:
            raise invalid("reference", "required")
        image = self.catalogue.resolve(request.reference, request.architecture or "x86_64")
        return image_pb2.GetImageResponse(image=image)

    @handler
    def AliasImage(self, request: Any, context: Any) -> Any:
        if not ALIAS.match(request.alias):
            raise invalid("alias", "must be 1-128 characters of [A-Za-z0-9._:/-]")
        image = self.catalogue.get(request.image_id)
        for other in self.catalogue.images.values():
            if other.canonical != image.canonical and request.alias in other.aliases:
                raise fail(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"alias {request.alias} points at {other.canonical}",
                )
        if request.alias not in image.aliases:
            image.aliases.append(request.alias)
        return image_pb2.AliasImageResponse(image=image)

    @handler
    def DealiasImage(self, request: Any, context: Any) -> Any:
        holders = [i for i in self.catalogue.images.values() if request.alias in i.aliases]
        if not holders:
            raise fail(grpc.StatusCode.NOT_FOUND, f"alias {request.alias} not found")
        for image in holders:
            image.aliases.remove(request.alias)
        return image_pb2.DealiasImageResponse()

    @handler
    def ForgetImage(self, request: Any, context: Any) -> Any:
        image = self.catalogue.get(request.image_id)
        image.status = image_pb2.IMAGE_STATUS_DELETED
        reply = image_pb2.ForgetImageResponse(image=image)
        if request.remove_from_agents:
            reply.task_id = self.catalogue.start_task("image.remove")
        return reply

    @handler
    def RescanImages(self, request: Any, context: Any) -> Any:
        if request.registry and request.registry not in REGISTRIES:
            raise fail(
                grpc.StatusCode.NOT_FOUND,
                f"registry {request.registry} not found",
                "REFERENCE_NOT_FOUND",
            )
        if not self.catalogue.as_tasks:
            return image_pb2.RescanImagesResponse()
        failure = "registry refused the credentials" if request.registry == REGISTRIES[2] else ""
        return image_pb2.RescanImagesResponse(
            task_id=self.catalogue.start_task("image.rescan", failure)
        )

    @handler
    def PullImage(self, request: Any, context: Any) -> Any:
        self.catalogue.get(request.image_id)
        unknown = [a for a in request.agent_ids if a not in AGENTS]
        if unknown or (request.scaling_group and request.scaling_group not in AGENTS.values()):
            what = ", ".join(unknown) or request.scaling_group
            raise fail(grpc.StatusCode.NOT_FOUND, f"{what} not found", "REFERENCE_NOT_FOUND")
        if not self.catalogue.as_tasks:
            return image_pb2.PullImageResponse()
        return image_pb2.PullImageResponse(task_id=self.catalogue.start_task("image.pull"))


class FakeTasks(bgtask_pb2_grpc.BackgroundTaskServiceServicer):
    SERVICE = "bai.api.manager.v1.BackgroundTaskService"

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.fake = catalogue.fake

    def WatchTask(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            self.fake.enter(context, request, f"/{self.SERVICE}/WatchTask")
            if request.task_id not in self.catalogue.tasks:
                raise fail(grpc.StatusCode.NOT_FOUND, f"task {request.task_id} not found")
        except Abort as exc:
            context.abort_with_status(exc.status)
        yield from self.catalogue.tasks[request.task_id]


@contextmanager
def image_server() -> Iterator[Catalogue]:
    """The fake manager (auth, images, tasks) on a free port, with the seeded catalogue."""
    catalogue = Catalogue(Fake())
    catalogue.seed()
    extra = [
        (image_pb2_grpc.add_ImageServiceServicer_to_server, FakeImages(catalogue)),
        (bgtask_pb2_grpc.add_BackgroundTaskServiceServicer_to_server, FakeTasks(catalogue)),  # type: ignore[abstract]
    ]
    with serve(catalogue.fake, extra):
        yield catalogue
