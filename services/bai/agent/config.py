"""The agent's typed config (`bai agent start`; env prefix BAI_AGENT__)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from bai.agent.resources.hardware import parse_cpu_list
from bai.agent.runtime.base import RuntimeChoice
from bai.common.component import ComponentConfig


class RuntimeConfig(BaseModel):
    kind: Literal["auto", "docker", "process"] = "auto"
    docker_socket: str = "unix:///var/run/docker.sock"
    # Process runtime: one rootfs directory per image.
    rootfs_dir: str = "/var/lib/bai/rootfs"

    def choice(self) -> RuntimeChoice:
        return RuntimeChoice(
            kind=self.kind, docker_socket=self.docker_socket, rootfs_dir=Path(self.rootfs_dir)
        )


class CudaConfig(BaseModel):
    enabled: Literal["auto", "on", "off"] = "auto"
    # A JSON description of fake GPUs (tests and demos); empty: real NVML.
    fake_nvml: str = ""


class AgentConfig(ComponentConfig):
    grpc_port: int = Field(default=6011, ge=0, le=65535)
    metrics_port: int = Field(default=6003, ge=0, le=65535)
    agent_id: str = Field(default="agent-1", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    scaling_group: str = "default"
    region: str = "local"
    manager_addr: str = "127.0.0.1:8091"
    # Address the kernels' host ports are reachable on (from the app proxy).
    public_host: str = "127.0.0.1"
    # Empty: ./state/agent/<agent_id>, resolved at start.
    state_dir: str = ""
    runtime: RuntimeConfig = RuntimeConfig()
    # Slot shares of this host ("" = all of it minus reserved); several agents
    # on one host each take a share, e.g. cpu="1", mem="2147483648".
    cpu: str = ""
    mem: str = ""
    reserved_cpu: str = "0"
    # Bind whole-core cpu requests to that many cores (a cpuset), least loaded first;
    # `cpu_cores` lists the cores this agent may use ("" = all usable; agents sharing a
    # host should get disjoint lists, e.g. "0-3" and "4-7").
    cpu_pinning: bool = False
    cpu_cores: str = ""
    reserved_mem: str = "0"
    # Host ports for kernels' services: [start, end).
    port_range: tuple[int, int] = (30000, 31000)
    # Until the manager's RegistrationAccepted says otherwise.
    heartbeat_interval_seconds: float = Field(default=20.0, gt=0)
    # Shared secret in "x-bai-internal-token"; "" = none (development).
    internal_token: str = ""
    cuda: CudaConfig = CudaConfig()
    stats_interval: float = Field(default=5.0, ge=1.0)
    # How long a new interactive kernel's runner may take to answer.
    runner_ready_timeout: float = Field(default=60.0, gt=0)
    # How long an app (StartService) may take to listen on its port.
    app_start_timeout: float = Field(default=60.0, gt=0)
    # Mount the runner from a copy in <state_dir>/runner instead of the installed
    # package: for an agent in a container, whose state dir has the same path on
    # the host (dockerd resolves bind mounts on the host).
    copy_runner: bool = False

    @model_validator(mode="after")
    def _check_port_range(self) -> AgentConfig:
        start, end = self.port_range
        if not 1024 < start < end <= 65536:
            raise ValueError("port_range must be [start, end) with 1024 < start < end <= 65536")
        if self.cpu_cores:
            parse_cpu_list(self.cpu_cores)  # a ValueError names the bad list
        return self

    def resolved_state_dir(self) -> Path:
        raw = self.state_dir or f"./state/agent/{self.agent_id}"
        return Path(raw).expanduser().resolve()
