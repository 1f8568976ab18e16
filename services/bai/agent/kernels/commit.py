"""CommitKernel: a running kernel's filesystem saved as an image, optionally pushed.

The manager records the new image from the result; the agent sends it no event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from bai.agent.kernels.image_ops import registry_auth
from bai.agent.kernels.lifecycle import KernelManager
from bai.agent.runtime.base import (
    CommitUnsupported,
    PullProgress,
    RuntimeFailure,
    RuntimeUnavailable,
)
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import image_pb2
from bai.common.errors import FailedPrecondition, InvalidArgument
from bai.common.image_refs import DEFAULT_TAG, reference_problem

TARGET_FIELD = "target.canonical"


def target_reference(reference: str) -> str:
    """The validated reference with its tag ("latest" when it names none); raises
    InvalidArgument on target.canonical."""
    problem = reference_problem(reference)
    if problem is not None:
        raise InvalidArgument.field(TARGET_FIELD, problem)
    if reference.rfind(":") > reference.rfind("/"):
        return reference
    return f"{reference}:{DEFAULT_TAG}"


def _progress(progress: PullProgress) -> agent_pb2.CommitKernelResponse:
    return agent_pb2.CommitKernelResponse(
        progress=agent_pb2.ImageProgress(
            current_bytes=progress.current_bytes,
            total_bytes=progress.total_bytes,
            message=progress.message,
        )
    )


async def commit_kernel(
    km: KernelManager, request: agent_pb2.CommitKernelRequest
) -> AsyncIterator[agent_pb2.CommitKernelResponse]:
    """Progress ("Committing", then the push's), then the result. Raises INVALID_FIELD,
    NOT_FOUND, SESSION_NOT_READY, INVALID_STATE (the runtime cannot commit) and
    IMAGE_PULL_FAILED (the push failed)."""
    ref = target_reference(request.target.canonical)
    if any(not key for key in request.labels):
        raise InvalidArgument.field("labels", "must not have an empty key")
    km.require_running(request.kernel_id)
    yield _progress(PullProgress(0, 0, f"Committing kernel {request.kernel_id} as {ref}"))
    runtime = km.ctx.runtime
    # Under the kernel's lock: a restart or destroy waits for the commit to finish.
    async with km.locks[request.kernel_id]:
        record = km.require_running(request.kernel_id)
        try:
            info = await runtime.commit(record.sandbox_id, ref, dict(request.labels))
        except CommitUnsupported as exc:
            raise FailedPrecondition(
                str(exc),
                reason="INVALID_STATE",
                metadata={"detail": "runtime-cannot-commit", "runtime": runtime.name},
            ) from exc
    if request.push:
        try:
            async for progress in runtime.push_image(ref, registry_auth(request.target)):
                yield _progress(progress)
        except RuntimeFailure as exc:
            if isinstance(exc, RuntimeUnavailable):
                raise
            raise FailedPrecondition(
                f"pushing {ref} failed: {exc}",
                reason="IMAGE_PULL_FAILED",
                metadata={"image": ref, "detail": str(exc)},
            ) from exc
    image = image_pb2.ImageRef(
        canonical=ref,
        architecture=info.architecture,
        digest=info.digest,
        is_local=not request.push,
    )
    result = agent_pb2.CommitResult(image=image, size_bytes=info.size_bytes, pushed=request.push)
    yield agent_pb2.CommitKernelResponse(result=result)
