"""Agent process: `bai agent start [--config FILE]` and `bai agent build-image`.

Starts the container runtime, the compute plugins and the kernel manager,
re-adopts the kernels a previous run left, serves AgentService (with health,
reflection and /metrics) and keeps the registry stream to the manager. On
SIGTERM it says goodbye to the manager and drains calls; kernels keep running
for the next agent process to re-adopt.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import grpc

from bai.agent.api.servicer import AgentServicer
from bai.agent.config import AgentConfig
from bai.agent.context import AgentContext
from bai.agent.kernels.adoption import adopt
from bai.agent.kernels.lifecycle import KernelManager, RunnerSetup
from bai.agent.registry_client import RegistryClient
from bai.agent.resources.allocator import NodeAllocator
from bai.agent.resources.cpu import CpuPlugin
from bai.agent.resources.hardware import parse_cpu_list
from bai.agent.resources.mem import MemPlugin
from bai.agent.resources.plugin import ComputePlugin
from bai.agent.runtime.base import KernelRuntime
from bai.api.agent.v1 import agent_pb2_grpc
from bai.common.component import load_component_config
from bai.common.logs import setup_logging
from bai.common.server import RunningServer, ServerSpec, run_event_loop, start_server

log = logging.getLogger("bai.agent")


def compute_plugins(config: AgentConfig) -> list[ComputePlugin]:
    plugins: list[ComputePlugin] = [
        CpuPlugin(
            share=Decimal(config.cpu) if config.cpu else None,
            reserved=Decimal(config.reserved_cpu),
            cores=parse_cpu_list(config.cpu_cores) if config.cpu_cores else None,
            pinning=config.cpu_pinning,
        ),
        MemPlugin(
            share=int(Decimal(config.mem)) if config.mem else None,
            reserved=int(Decimal(config.reserved_mem)),
        ),
    ]
    if config.cuda.enabled != "off":
        from bai.agent.resources.cuda import CudaPlugin
        from bai.agent.resources.nvml import FAKE_NVML_ENV, open_nvml

        environ = {FAKE_NVML_ENV: config.cuda.fake_nvml} if config.cuda.fake_nvml else None
        cuda = CudaPlugin(open_nvml(environ))
        if config.cuda.enabled == "on" or cuda.status().state != "unavailable":
            plugins.append(cuda)
    return plugins


@dataclass
class RunningAgent:
    ctx: AgentContext
    km: KernelManager
    server: RunningServer
    registry: RegistryClient

    @property
    def grpc_port(self) -> int:
        return self.server.grpc_port

    async def stop(self) -> None:
        """Drain: tell the manager, stop serving, stop watching; kernels keep running."""
        self.ctx.shutting_down = True
        await self.registry.stop()
        await self.server.stop()
        await self.km.close()
        await self.ctx.runtime.close()


async def start_agent(
    config: AgentConfig,
    runtime: KernelRuntime | None = None,
    runner: RunnerSetup | None = None,
    plugins: list[ComputePlugin] | None = None,
) -> RunningAgent:
    """Everything `bai agent start` runs; tests pass their own runtime or runner."""
    state_dir = config.resolved_state_dir()
    state_dir.mkdir(parents=True, exist_ok=True)
    if runtime is None:
        from bai.agent.runtime.select import select_runtime

        runtime = await select_runtime(config.runtime.choice(), state_dir)
    allocator = NodeAllocator(plugins if plugins is not None else compute_plugins(config))
    ctx = AgentContext(config=config, runtime=runtime, allocator=allocator, state_dir=state_dir)
    copy_to = state_dir / "runner" if config.copy_runner else None
    km = KernelManager(ctx, runner or RunnerSetup.default(copy_to))
    report = await adopt(km)
    log.info("kernels re-adopted", extra={"report": vars(report)})
    servicer = AgentServicer(ctx, km)

    def register(server: grpc.aio.Server) -> None:
        agent_pb2_grpc.add_AgentServiceServicer_to_server(servicer, server)

    server = await start_server(
        ServerSpec(
            component="agent",
            bind=config.bind,
            grpc_port=config.grpc_port,
            metrics_bind=config.metrics_bind,
            metrics_port=config.metrics_port,
            service_names=[AgentServicer.SERVICE],
            register=register,
        )
    )
    registry = RegistryClient(ctx, km, server.grpc_port)
    registry.start()
    return RunningAgent(ctx, km, server, registry)


def main(argv: list[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["build-image"]:
        from bai.agent.images.build import build_main

        return build_main(words[1:])
    parser = argparse.ArgumentParser(prog="bai agent", description="The bai node agent.")
    parser.add_argument("--config", type=Path, help="TOML config file (BAI_AGENT__* overrides)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("start", help="run the agent: AgentService, registry stream, kernels")
    sub.add_parser("build-image", help="build the local Python kernel image (see --help)")
    args = parser.parse_args(words)

    async def run() -> None:
        config = await load_component_config(AgentConfig, "agent", args.config, "BAI_AGENT")
        setup_logging("agent", config.log_level)
        log.info(
            "starting", extra={"config": config.model_dump(mode="json", exclude={"internal_token"})}
        )
        agent = await start_agent(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await agent.stop()

    run_event_loop(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
