"""Pure parts of the agent core: the outbox, the port pool, kernel environment,
exit verdicts, path containment, records on disk."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bai.agent.events import Outbox
from bai.agent.kernels.exits import classify_exit
from bai.agent.kernels.files import contained_path
from bai.agent.kernels.ports import PortPool
from bai.agent.kernels.records import KernelRecord, KernelStore
from bai.agent.kernels.sandbox_spec import (
    ROOT_USER,
    KernelUser,
    kernel_environ,
    kernel_user,
    runner_config,
    sandbox_spec,
)
from bai.agent.resources.cpu import CpuPlugin, cpuset_of
from bai.agent.resources.plugin import Allocation, DeviceShare
from bai.agent.runtime.base import SandboxState
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import session_pb2
from bai.common.errors import InvalidArgument, ResourceExhausted
from bai.stack.testing import free_ports
from tests.agent.core.helpers import kernel_config

LR = session_pb2.LifecycleReason


async def test_outbox_numbers_acks_bounds_and_wakes() -> None:
    outbox = Outbox(limit=3)
    seqs = [outbox.agent_error(f"e{i}") for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    # Past the bound the oldest unacked events are dropped.
    assert [e.seq for e in outbox.unacked()] == [3, 4, 5]
    assert outbox.dropped == 2
    outbox.ack(4)
    assert [e.seq for e in outbox.unacked()] == [5]
    assert outbox.unacked(after=5) == []
    waiter = asyncio.create_task(outbox.wait_beyond(5))
    await asyncio.sleep(0)
    assert not waiter.done()
    outbox.agent_error("e6")
    await asyncio.wait_for(waiter, 5)


def test_port_pool_all_or_nothing_and_restore() -> None:
    start = free_ports(1)[0]
    pool = PortPool(start, start + 3)
    assert len(pool.take("k1", 2)) == 2
    with pytest.raises(ResourceExhausted) as info:
        pool.take("k2", 2)
    assert info.value.reason == "NO_CAPACITY"
    assert pool.owned("k2") == []
    held = pool.owned("k1")
    pool.release_owner("k1")
    pool.restore("k1", held)
    assert pool.owned("k1") == held
    assert pool.assign("r") == pool.assign("r")
    with pytest.raises(InvalidArgument):
        pool.release(start - 1)


def _record(**fields: object) -> KernelRecord:
    config = kernel_config(**fields)  # type: ignore[arg-type]
    config.environ["USER_VAR"] = "1"
    cluster = agent_pb2.ClusterInfo(
        mode=session_pb2.CLUSTER_MODE_MULTI_NODE,
        size=2,
        replicas={"main": 1, "sub": 1},
        hostnames=["main1", "sub1"],
    )
    gpu = Allocation(
        "cuda",
        {"cuda.device": Decimal(1)},
        (DeviceShare("GPU-0", "cuda.device", Decimal(1)),),
        environ={"CUDA_VISIBLE_DEVICES": "GPU-0"},
        device_paths=("/dev/nvidia0",),
    )
    return KernelRecord(config=config, cluster=cluster, allocations=[gpu])


def test_kernel_environment() -> None:
    record = _record()
    environ = kernel_environ(record, ROOT_USER)
    for prefix in ("BAI_", "BACKENDAI_"):
        assert environ[prefix + "KERNEL_ID"] == record.kernel_id
        assert environ[prefix + "SESSION_ID"] == record.session_id
        assert environ[prefix + "CLUSTER_MODE"] == "multi-node"
        assert environ[prefix + "CLUSTER_SIZE"] == "2"
        assert environ[prefix + "CLUSTER_REPLICAS"] == "main:1,sub:1"
        assert environ[prefix + "CLUSTER_HOSTS"] == "main1,sub1"
        assert environ[prefix + "CLUSTER_HOST"] == "main1"
        assert environ[prefix + "CLUSTER_ROLE"] == "main"
        assert environ[prefix + "CLUSTER_IDX"] == "1"
        assert environ[prefix + "CLUSTER_LOCAL_RANK"] == "0"
    assert environ["CUDA_VISIBLE_DEVICES"] == "GPU-0"
    assert environ["USER_VAR"] == "1"
    assert "LOCAL_USER_ID" not in environ
    assert kernel_environ(record, KernelUser(1000, 1001))["LOCAL_GROUP_ID"] == "1001"
    config = runner_config(_record(session_type=session_pb2.SESSION_TYPE_BATCH), ROOT_USER)
    assert config["session_type"] == "batch"
    assert (config["uid"], config["gid"], config["supplementary_gids"]) == (0, 0, [])


def test_kernel_user_needs_uid_match_and_defaults_to_the_work_user() -> None:
    uid_match = {"ai.backend.features": "query batch uid-match"}
    manager_default = kernel_config()
    assert kernel_user(manager_default, uid_match) == KernelUser(1000, 1000)
    assert kernel_user(manager_default, {"ai.backend.features": "query batch"}) == ROOT_USER
    chosen = kernel_config(uid=2000, main_gid=2001, supplementary_gids=[2002, 2003])
    assert kernel_user(chosen, uid_match) == KernelUser(2000, 2001, (2002, 2003))
    assert kernel_user(chosen, {}) == ROOT_USER
    config = runner_config(_record(), kernel_user(chosen, uid_match))
    assert (config["uid"], config["gid"], config["supplementary_gids"]) == (
        2000,
        2001,
        [2002, 2003],
    )


@pytest.mark.parametrize(
    ("oom", "batch", "result", "code", "reason"),
    [
        (True, False, None, 137, LR.LIFECYCLE_REASON_OUT_OF_MEMORY),
        (False, False, None, 0, LR.LIFECYCLE_REASON_SELF_TERMINATED),
        (False, True, {"exit_code": 0, "reason": "finished"}, 0, LR.LIFECYCLE_REASON_TASK_FINISHED),
        (False, True, {"exit_code": 2, "reason": "failed"}, 2, LR.LIFECYCLE_REASON_TASK_FAILED),
        (
            False,
            True,
            {"exit_code": 124, "reason": "timeout"},
            124,
            LR.LIFECYCLE_REASON_TASK_TIMEOUT,
        ),
        (False, True, None, 1, LR.LIFECYCLE_REASON_TASK_FAILED),
    ],
)
def test_exit_verdicts(
    oom: bool, batch: bool, result: dict[str, object] | None, code: int, reason: int
) -> None:
    state = SandboxState("s", "k", {}, running=False, exit_code=code, oom_killed=oom)
    verdict = classify_exit(state, batch, result)
    assert (verdict.reason, verdict.exit_code) == (reason, code)
    if batch:
        success = reason == LR.LIFECYCLE_REASON_TASK_FINISHED
        expected = (
            session_pb2.SESSION_RESULT_SUCCESS if success else session_pb2.SESSION_RESULT_FAILURE
        )
        assert verdict.session_result == expected


def test_path_containment(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    os.symlink("/etc", tmp_path / "out")
    assert contained_path(tmp_path, "a") == (tmp_path / "a").resolve()
    assert contained_path(tmp_path, "/home/work/a") == (tmp_path / "a").resolve()
    assert contained_path(tmp_path, "") == tmp_path.resolve()
    for bad in ("../x", "a/../../x", "/etc/passwd", "out/passwd", "/home/workx", "a\x00b"):
        with pytest.raises(InvalidArgument):
            contained_path(tmp_path, bad)


def test_records_round_trip(tmp_path: Path) -> None:
    store = KernelStore(tmp_path)
    record = _record()
    record.status = session_pb2.KERNEL_STATUS_RUNNING
    record.sandbox_id = "sandbox-1"
    record.host_ports = [30001]
    record.service_ports = [
        session_pb2.ServicePort(name="ttyd", container_ports=[7681], host_ports=[30001])
    ]
    record.started_at = datetime.now(UTC)
    record.exit_code = None
    store.save(record)
    (loaded,) = store.load_all()
    assert loaded.to_json() == record.to_json()
    assert loaded.allocations == record.allocations
    proto = loaded.to_proto("10.0.0.1")
    assert proto.runtime.kernel_host == "10.0.0.1"
    assert [d.device_id for d in proto.runtime.attached_devices] == ["GPU-0"]
    assert not list(tmp_path.glob("*.tmp"))


def test_a_containerized_agent_mounts_a_copy_of_the_runner(tmp_path: Path) -> None:
    from bai.agent.kernels.lifecycle import RunnerSetup
    from bai.agent.runner.layout import runner_package_dir

    setup = RunnerSetup.default(tmp_path / "runner")
    assert setup.package_dir == tmp_path / "runner"
    installed = sorted(p.name for p in runner_package_dir().glob("*.py"))
    assert sorted(p.name for p in setup.package_dir.glob("*.py")) == installed
    assert "kernel_runner.py" in installed


def test_the_sandbox_is_bound_to_the_cores_its_cpu_allocation_pins() -> None:
    record = _record()
    pinned = CpuPlugin(cores=[0, 1, 2, 3], pinning=True).allocate("k-pinned", {"cpu": Decimal(2)})
    record.allocations.append(pinned)
    spec = sandbox_spec(
        record,
        agent_id="a-1",
        scratch=Path("/tmp/s"),
        run_dir=Path("/tmp/r"),
        runner_dir=Path("/tmp/runner"),
        command=["true"],
        port_mappings=[],
        user=ROOT_USER,
    )
    assert spec.cpuset == cpuset_of(pinned) and len(spec.cpuset.split(",")) == 2
    assert spec.gpu_device_ids == ["GPU-0"]
    unpinned = CpuPlugin(cores=[0, 1], pinning=False).allocate("k-free", {"cpu": Decimal(1)})
    record.allocations[-1] = unpinned
    assert cpuset_of(unpinned) == ""
