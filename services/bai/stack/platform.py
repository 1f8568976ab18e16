"""The bai platform as stack components: Envoy, manager, storage proxy, agent, coordinator.

Importing this module registers them after the infrastructure. The stack
starts components in parallel, so `bai stack up` runs two waves
(infrastructure, then these) because the services need the database, Redis
and etcd at start-up.
"""

from __future__ import annotations

import json
import secrets
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bai.gateway.config import (
    DEFAULT_DESCRIPTOR,
    gateway_process_argv,
    render_gateway_config,
    services_in_descriptor,
)
from bai.stack.config import StackConfig, repo_root
from bai.stack.docker_host import ensure_dockerd
from bai.stack.errors import StackError
from bai.stack.health import http_ok
from bai.stack.spec import HealthCheck, ProcessSpec, register_component


def grpc_serving(host: str, port: int) -> HealthCheck:
    def check() -> bool:
        try:
            with grpc.insecure_channel(f"{host}:{port}") as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
        except grpc.RpcError:
            return False

    return check


def _service_env(config: StackConfig, prefix: str) -> dict[str, str]:
    return {
        f"{prefix}__ETCD__HOST": config.host,
        f"{prefix}__ETCD__PORT": str(config.port("etcd")),
        f"{prefix}__BIND": config.host,
    }


def internal_token(config: StackConfig) -> str:
    """The secret agents and the manager show each other, made once per state dir."""
    path = config.state_dir / "internal-token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def manager(config: StackConfig) -> ProcessSpec:
    port = config.port("manager")
    env = _service_env(config, "BAI_MANAGER")
    scrape = {
        name: [f"{config.host}:{config.port(name + '-metrics')}"]
        for name in ("storage", "agent", "coordinator")
    }
    scrape["envoy"] = [f"{config.host}:{config.port('envoy-admin')}/stats/prometheus"]
    env |= {
        "BAI_MANAGER__GRPC_PORT": str(port),
        "BAI_MANAGER__METRICS_PORT": str(config.port("manager-metrics")),
        "BAI_MANAGER__DB__URL": config.pg_dsn,
        "BAI_MANAGER__REDIS__URL": config.redis_url,
        "BAI_MANAGER__SCRAPE_TARGETS": json.dumps(scrape),
        "BAI_MANAGER__AGENT__INTERNAL_TOKEN": internal_token(config),
    }
    return ProcessSpec(
        name="manager",
        argv=[sys.executable, "-m", "bai.manager", "start"],
        env=env,
        port=port,
        health=grpc_serving(config.host, port),
        cwd=repo_root(),
    )


def _thin(name: str, extra: dict[str, str]) -> object:
    def spec(config: StackConfig) -> ProcessSpec:
        prefix = f"BAI_{name.upper()}"
        port = config.port(name)
        env = _service_env(config, prefix) | {
            f"{prefix}__GRPC_PORT": str(port),
            f"{prefix}__METRICS_PORT": str(config.port(f"{name}-metrics")),
        }
        for key, port_name in extra.items():
            env[f"{prefix}__{key}"] = str(config.port(port_name))
        return ProcessSpec(
            name=name,
            argv=[sys.executable, "-m", f"bai.{name}", "start"],
            env=env,
            port=port,
            health=grpc_serving(config.host, port),
            cwd=repo_root(),
        )

    return spec


def agent(config: StackConfig) -> ProcessSpec:
    """One agent on this host; it registers with the stack's manager.

    Its runtime is chosen at start ("auto": Docker when dockerd answers, else
    the bubblewrap process runtime); `prepare` starts the host's dockerd when it
    is installed but not running.
    """
    port = config.port("agent")
    state = config.component_dir("agent")
    env = _service_env(config, "BAI_AGENT") | {
        "BAI_AGENT__GRPC_PORT": str(port),
        "BAI_AGENT__METRICS_PORT": str(config.port("agent-metrics")),
        "BAI_AGENT__MANAGER_ADDR": f"{config.host}:{config.port('manager')}",
        "BAI_AGENT__PUBLIC_HOST": config.host,
        "BAI_AGENT__STATE_DIR": str(state),
        "BAI_AGENT__INTERNAL_TOKEN": internal_token(config),
    }

    def prepare() -> None:
        state.mkdir(parents=True, exist_ok=True)
        try:
            ensure_dockerd()
        except StackError as exc:
            # The agent then runs kernels with the process runtime.
            print(f"agent: no Docker ({exc}); kernels will use the process runtime")

    return ProcessSpec(
        name="agent",
        argv=[sys.executable, "-m", "bai.agent", "start"],
        env=env,
        port=port,
        health=grpc_serving(config.host, port),
        prepare=prepare,
        cwd=repo_root(),
    )


def envoy(config: StackConfig) -> ProcessSpec:
    conf = config.component_dir("envoy") / "gateway.yaml"
    descriptor = repo_root() / DEFAULT_DESCRIPTOR
    admin = config.port("envoy-admin")
    # The browser UI (scripts/build_web.sh), served under /ui/ once built.
    web = repo_root() / "clients" / "web" / "dist"

    def prepare() -> None:
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(
            render_gateway_config(
                listen_port=config.port("envoy"),
                admin_port=admin,
                manager_addr=(config.host, config.port("manager")),
                storage_addr=(config.host, config.port("storage")),
                descriptor_path=descriptor,
                services=services_in_descriptor(descriptor),
                web_root=web if (web / "index.html").is_file() else None,
            )
        )

    return ProcessSpec(
        name="envoy",
        argv=gateway_process_argv(conf, log_level="warn"),
        port=config.port("envoy"),
        health=http_ok(f"http://{config.host}:{admin}/ready"),
        prepare=prepare,
        cwd=repo_root(),
    )


register_component("manager", manager, replace=True)
register_component("storage", _thin("storage", {"MANAGER_PORT": "storage-manager"}), replace=True)  # type: ignore[arg-type]
register_component("agent", agent, replace=True)
register_component("coordinator", _thin("coordinator", {}), replace=True)  # type: ignore[arg-type]
register_component("envoy", envoy, replace=True)
