"""Manager process: `bai manager start|migrate|bootstrap`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from pathlib import Path

import grpc

from bai.api.manager.v1 import (
    agent_pb2_grpc,
    agent_registry_pb2_grpc,
    audit_pb2_grpc,
    auth_pb2_grpc,
    bgtask_pb2_grpc,
    domain_pb2_grpc,
    image_pb2_grpc,
    keypair_pb2_grpc,
    project_pb2_grpc,
    resource_policy_pb2_grpc,
    scaling_group_pb2_grpc,
    session_pb2_grpc,
    user_pb2_grpc,
    vfolder_pb2_grpc,
)
from bai.common.component import load_component_config, placeholder_handler
from bai.common.logs import setup_logging
from bai.common.server import ServerSpec, run_event_loop, run_until_signalled
from bai.manager import bootstrap as bootstrap_mod
from bai.manager.api.agent_registry_service import AgentRegistryServicer
from bai.manager.api.agent_service import AgentServicer
from bai.manager.api.audit_log_service import AuditLogServicer
from bai.manager.api.auth_service import AuthServicer
from bai.manager.api.bgtask_service import BackgroundTaskServicer
from bai.manager.api.domain_service import DomainServicer
from bai.manager.api.image_service import ImageServicer
from bai.manager.api.keypair_service import KeypairServicer
from bai.manager.api.project_service import ProjectServicer
from bai.manager.api.resource_policy_service import ResourcePolicyServicer
from bai.manager.api.scaling_group_service import ScalingGroupServicer
from bai.manager.api.session_service import SessionServicer
from bai.manager.api.user_service import UserServicer
from bai.manager.api.vfolder_service import VFolderServicer
from bai.manager.config import ManagerConfig
from bai.manager.context import ManagerContext
from bai.manager.db.migrations import upgrade_async

log = logging.getLogger("bai.manager")


def register_services(server: grpc.aio.Server, ctx: ManagerContext) -> list[str]:
    """Add every manager servicer to `server`; returns the service names."""
    auth_pb2_grpc.add_AuthServiceServicer_to_server(AuthServicer(ctx), server)
    domain_pb2_grpc.add_DomainServiceServicer_to_server(DomainServicer(ctx), server)
    resource_policy_pb2_grpc.add_ResourcePolicyServiceServicer_to_server(
        ResourcePolicyServicer(ctx), server
    )
    scaling_group_pb2_grpc.add_ScalingGroupServiceServicer_to_server(
        ScalingGroupServicer(ctx), server
    )
    audit_pb2_grpc.add_AuditLogServiceServicer_to_server(AuditLogServicer(ctx), server)
    user_pb2_grpc.add_UserServiceServicer_to_server(UserServicer(ctx), server)
    keypair_pb2_grpc.add_KeypairServiceServicer_to_server(KeypairServicer(ctx), server)
    project_pb2_grpc.add_ProjectServiceServicer_to_server(ProjectServicer(ctx), server)
    session_pb2_grpc.add_SessionServiceServicer_to_server(SessionServicer(ctx), server)
    agent_registry_pb2_grpc.add_AgentRegistryServiceServicer_to_server(
        AgentRegistryServicer(ctx), server
    )
    agent_pb2_grpc.add_AgentServiceServicer_to_server(AgentServicer(ctx), server)
    image_pb2_grpc.add_ImageServiceServicer_to_server(ImageServicer(ctx), server)
    vfolder_pb2_grpc.add_VFolderServiceServicer_to_server(VFolderServicer(ctx), server)
    bgtask_pb2_grpc.add_BackgroundTaskServiceServicer_to_server(BackgroundTaskServicer(ctx), server)
    return [
        AuthServicer.SERVICE,
        DomainServicer.SERVICE,
        ResourcePolicyServicer.SERVICE,
        ScalingGroupServicer.SERVICE,
        AuditLogServicer.SERVICE,
        UserServicer.SERVICE,
        KeypairServicer.SERVICE,
        ProjectServicer.SERVICE,
        SessionServicer.SERVICE,
        AgentRegistryServicer.SERVICE,
        AgentServicer.SERVICE,
        ImageServicer.SERVICE,
        VFolderServicer.SERVICE,
        BackgroundTaskServicer.SERVICE,
        *register_placeholders(server),
    ]


# Contracts whose implementation lands in later issues (sessions, storage):
# served so that callers get UNIMPLEMENTED/NOT_IMPLEMENTED, and listed by
# reflection so that grpcurl and the SDK see the whole API.
PLACEHOLDERS = [
    "bai.api.manager.v1.DeploymentService",
]


def register_placeholders(server: grpc.aio.Server) -> list[str]:
    from bai.api.manager.v1 import (  # noqa: F401 - register the contracts
        agent_pb2,
        agent_registry_pb2,
        bgtask_pb2,
        deployment_pb2,
        image_pb2,
        session_pb2,
        vfolder_pb2,
    )

    server.add_generic_rpc_handlers([placeholder_handler(name) for name in PLACEHOLDERS])
    return PLACEHOLDERS


def service_discovery(config: ManagerConfig) -> list[dict[str, object]]:
    """Prometheus HTTP SD: the manager itself plus configured targets.

    A target may carry its metrics path: "127.0.0.1:9901/stats/prometheus".
    """
    groups: list[dict[str, object]] = [
        {
            "targets": [f"{config.metrics_bind}:{config.metrics_port}"],
            "labels": {"component": "manager"},
        }
    ]
    for component, targets in sorted(config.scrape_targets.items()):
        for target in targets:
            address, _, path = target.partition("/")
            labels = {"component": component}
            if path:
                labels["__metrics_path__"] = "/" + path
            groups.append({"targets": [address], "labels": labels})
    return groups


def manager_server_spec(ctx: ManagerContext) -> ServerSpec:
    """The manager's gRPC server and metrics port, as `bai manager start` and the
    tests run it."""
    config = ctx.config
    names: list[str] = []
    return ServerSpec(
        component="manager",
        bind=config.bind,
        grpc_port=config.grpc_port,
        metrics_bind=config.metrics_bind,
        metrics_port=config.metrics_port,
        service_names=names,
        register=lambda server: names.extend(register_services(server, ctx)),
        json_endpoints={"/metrics/service_discovery": lambda: service_discovery(config)},
    )


async def start(config: ManagerConfig) -> None:
    ctx = ManagerContext.create(config)
    await upgrade_async(config.db.url)
    ctx.start_background()
    await run_until_signalled(manager_server_spec(ctx), ctx.close)


async def run_bootstrap(config: ManagerConfig, args: argparse.Namespace) -> int:
    # A command for people: keep its output to the result.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    await upgrade_async(config.db.url)
    ctx = ManagerContext.create(config)
    try:
        async with ctx.sessions() as db, db.begin():
            result = await bootstrap_mod.bootstrap(
                db,
                email=args.email,
                username=args.username,
                password=args.password,
                vfolder_host=config.storage.default_host,
            )
    finally:
        await ctx.close()
    print(json.dumps(result.__dict__, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bai manager", description="The bai manager.")
    parser.add_argument("--config", type=Path, help="TOML config file (BAI_MANAGER__* overrides)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("start", help="serve the manager gRPC API (migrates the database first)")
    sub.add_parser("migrate", help="bring the database schema up to date")
    boot = sub.add_parser(
        "bootstrap",
        help="create the default domain/project/scaling group and a superadmin (idempotent)",
    )
    boot.add_argument("--email", default="admin@bai.local")
    boot.add_argument("--username", default="admin")
    boot.add_argument("--password", help="superadmin password (generated when omitted)")
    args = parser.parse_args(argv)
    config = asyncio.run(
        load_component_config(ManagerConfig, "manager", args.config, "BAI_MANAGER")
    )
    setup_logging("manager", config.log_level)
    if args.command == "start":
        run_event_loop(start(config))
        return 0
    if args.command == "migrate":
        asyncio.run(upgrade_async(config.db.url))
        return 0
    return asyncio.run(run_bootstrap(config, args))
