"""vfolder mounts on both runtimes (real dockerd, real bubblewrap), through the agent's
gRPC API and the real runner: rw writes reach the host as the work user's, host files
are readable, ro refuses writes, and bad specs are refused without a kernel left."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import session_pb2, storage_pb2
from tests.agent.core.helpers import KS, create_request, kernel_config, stub_for, wait_status
from tests.agent.core.test_lifecycle import result_reason
from tests.agent.runtime.real_agent import RUNTIMES, execute, real_agent, skip_unless_runtime
from tests.rpc_errors import reason_of, violated_fields

MP = storage_pb2.MountPermission
IMAGE = "bai.local/stable/python:3.11"


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """Short (unix socket paths are limited) and outside pytest's 0700 tmp tree, so the
    work user can reach the folders in it."""
    path = Path(tempfile.mkdtemp(prefix="bai-m-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def vfolder(name: str, host_path: Path, permission: int, kernel_path: str = "") -> object:
    return session_pb2.VFolderMount(
        vfolder_id=f"id-{name}",
        name=name,
        host_path=str(host_path),
        kernel_path=kernel_path,
        permission=permission,  # type: ignore[arg-type]
    )


PROBE = """
import os
with open('/home/work/data/from-kernel.txt', 'w') as out:
    out.write('written in the kernel')
os.makedirs('/home/work/data/sub/deeper')
print(open('/mnt/inputs/hello.txt').read())
try:
    open('/mnt/inputs/nope.txt', 'w')
except OSError as exc:
    print('refused', exc.errno)
print(os.getuid())
# The parent of a nested mount point is the work user's too.
open('/home/work/nested/beside.txt', 'w').write('x')
print(sorted(os.listdir('/home/work/nested/deep')))
"""


@pytest.mark.parametrize("kind", RUNTIMES)
async def test_vfolders_mount_rw_and_ro(kind: str, kernel_image: str, host_dir: Path) -> None:
    skip_unless_runtime(kind)
    data, inputs = host_dir / "data", host_dir / "inputs"
    data.mkdir(mode=0o755)
    inputs.mkdir(mode=0o755)
    (inputs / "hello.txt").write_text("hello from the host")
    config = kernel_config(
        image=kernel_image,
        vfolder_mounts=[
            vfolder("data", data, MP.MOUNT_PERMISSION_READ_WRITE),
            vfolder("inputs", inputs, MP.MOUNT_PERMISSION_READ_ONLY, "/mnt/inputs"),
            vfolder("deep", inputs, MP.MOUNT_PERMISSION_READ_ONLY, "nested/deep"),
        ],
    )
    async with real_agent(kind, host_dir / "state") as agent:
        channel, stub = stub_for(agent)
        async with channel:
            await stub.CreateKernels(create_request(config))
        await wait_status(agent, config.kernel_id, KS.KERNEL_STATUS_RUNNING)
        output = await execute(agent, config.kernel_id, PROBE)
    assert output.splitlines() == [
        "hello from the host",
        "refused 30",
        "1000",
        "['hello.txt']",
    ]
    written = data / "from-kernel.txt"
    assert written.read_text() == "written in the kernel"
    assert (written.stat().st_uid, written.stat().st_gid) == (1000, 1000)
    # Readable by anyone (the storage proxy), as the work user's umask leaves it.
    assert written.stat().st_mode & 0o777 == 0o644
    assert (data / "sub" / "deeper").is_dir()
    assert not (inputs / "nope.txt").exists()


@pytest.mark.parametrize("kind", RUNTIMES)
async def test_bad_mounts_are_refused_and_leave_no_kernel(
    kind: str, kernel_image: str, host_dir: Path
) -> None:
    skip_unless_runtime(kind)
    escaping = kernel_config(
        image=kernel_image,
        vfolder_mounts=[
            vfolder("data", host_dir, MP.MOUNT_PERMISSION_READ_WRITE, "../../etc"),
            vfolder("runner", host_dir, MP.MOUNT_PERMISSION_READ_ONLY, "/opt/bai/runner"),
        ],
    )
    missing = kernel_config(
        image=kernel_image,
        vfolder_mounts=[vfolder("gone", host_dir / "gone", MP.MOUNT_PERMISSION_READ_WRITE)],
    )
    async with real_agent(kind, host_dir / "state") as agent:
        channel, stub = stub_for(agent)
        async with channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.CreateKernels(create_request(escaping))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert reason_of(refused.value) == "INVALID_FIELD"
            assert violated_fields(refused.value) == [
                "kernels[0].vfolder_mounts[0].kernel_path",
                "kernels[0].vfolder_mounts[1].kernel_path",
            ]
            reply = await stub.CreateKernels(create_request(missing))
            (result,) = reply.results
            assert result.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
            assert result_reason(result.error) == "KERNEL_CREATION_FAILED"
            assert f"{host_dir / 'gone'} (for /home/work/gone) does not exist" in (
                result.error.message
            )
            assert not result.HasField("kernel")
            for kernel_id in (escaping.kernel_id, missing.kernel_id):
                with pytest.raises(grpc.aio.AioRpcError) as unknown:
                    await stub.GetKernel(agent_pb2.GetKernelRequest(kernel_id=kernel_id))
                assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        assert await agent.ctx.runtime.list_sandboxes(agent.ctx.agent_id) == []
        assert not agent.ctx.store.path_of(missing.kernel_id).exists()
        assert not await asyncio.to_thread(os.path.exists, agent.ctx.scratch_dir(missing.kernel_id))
