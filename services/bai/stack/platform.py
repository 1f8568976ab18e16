"""The bai platform as stack components: Envoy, manager, storage proxy, agent,
coordinator and the app-proxy Envoy it programs.

Importing this module registers them after the infrastructure. The stack
starts components in parallel, so `bai stack up` runs two waves
(infrastructure, then these) because the services need the database, Redis
and etcd at start-up.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bai.coordinator.xds.bootstrap import app_proxy_process_argv, render_app_proxy_bootstrap
from bai.gateway.config import DEFAULT_DESCRIPTOR, render_gateway_config, services_in_descriptor
from bai.gateway.process import gateway_process_argv
from bai.stack.config import APP_PROXY_PORTS, StackConfig, repo_root
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


def stack_secret(config: StackConfig, name: str) -> str:
    """A secret made once per state dir (mode 600) and reused by every later `up`."""
    path = config.state_dir / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def internal_token(config: StackConfig) -> str:
    """The secret the services show each other (agents, storage proxy, coordinator)."""
    return stack_secret(config, "internal-token")


#: The stack's one storage volume: "<proxy>:<volume>".
STORAGE_PROXY = "local"
STORAGE_VOLUME = "local"


def app_proxy_authority(config: StackConfig) -> str:
    return f"{config.host}:{config.port('app-proxy')}"


def manager(config: StackConfig) -> ProcessSpec:
    port = config.port("manager")
    env = _service_env(config, "BAI_MANAGER")
    scrape = {
        name: [f"{config.host}:{config.port(name + '-metrics')}"]
        for name in ("storage", "agent", "coordinator")
    }
    scrape["envoy"] = [f"{config.host}:{config.port('envoy-admin')}/stats/prometheus"]
    scrape["app-proxy"] = [f"{config.host}:{config.port('app-proxy-admin')}/stats/prometheus"]
    token = internal_token(config)
    coordinator_addr = f"{config.host}:{config.port('coordinator')}"
    proxies = {
        STORAGE_PROXY: {
            "manager_address": f"{config.host}:{config.port('storage-manager')}",
            "secret": token,
        }
    }
    env |= {
        "BAI_MANAGER__GRPC_PORT": str(port),
        "BAI_MANAGER__METRICS_PORT": str(config.port("manager-metrics")),
        "BAI_MANAGER__DB__URL": config.pg_dsn,
        "BAI_MANAGER__REDIS__URL": config.redis_url,
        "BAI_MANAGER__SCRAPE_TARGETS": json.dumps(scrape),
        "BAI_MANAGER__AGENT__INTERNAL_TOKEN": token,
        "BAI_MANAGER__STORAGE__PROXIES": json.dumps(proxies),
        "BAI_MANAGER__STORAGE__DEFAULT_HOST": f"{STORAGE_PROXY}:{STORAGE_VOLUME}",
        "BAI_MANAGER__APP_PROXY__COORDINATOR_ADDRESS": coordinator_addr,
        "BAI_MANAGER__APP_PROXY__INTERNAL_TOKEN": token,
    }
    return ProcessSpec(
        name="manager",
        argv=[sys.executable, "-m", "bai.manager", "start"],
        env=env,
        port=port,
        health=grpc_serving(config.host, port),
        cwd=repo_root(),
    )


def _service(
    config: StackConfig, name: str, env: dict[str, str], prepare: Callable[[], None] | None = None
) -> ProcessSpec:
    prefix = f"BAI_{name.upper()}"
    port = config.port(name)
    env = _service_env(config, prefix) | {
        f"{prefix}__GRPC_PORT": str(port),
        f"{prefix}__METRICS_PORT": str(config.port(f"{name}-metrics")),
        **env,
    }
    return ProcessSpec(
        name=name,
        argv=[sys.executable, "-m", f"bai.{name}", "start"],
        env=env,
        port=port,
        health=grpc_serving(config.host, port),
        prepare=prepare,
        cwd=repo_root(),
    )


def storage(config: StackConfig) -> ProcessSpec:
    """The storage proxy with one vfs volume under the state dir."""
    volume = config.component_dir("storage") / STORAGE_VOLUME
    env = {
        "BAI_STORAGE__MANAGER_PORT": str(config.port("storage-manager")),
        "BAI_STORAGE__HTTP_PORT": str(config.port("storage-http")),
        f"BAI_STORAGE__VOLUMES__{STORAGE_VOLUME.upper()}__PATH": str(volume),
        "BAI_STORAGE__JWT_SECRET": stack_secret(config, "storage-jwt-secret"),
        "BAI_STORAGE__MANAGER_TOKEN": internal_token(config),
        "BAI_STORAGE__CLIENT_ADDRESS": f"{config.host}:{config.port('envoy')}",
    }
    return _service(config, "storage", env, lambda: volume.mkdir(parents=True, exist_ok=True))


def coordinator(config: StackConfig) -> ProcessSpec:
    """The app-proxy coordinator, programming the stack's one app-proxy Envoy."""
    first = config.port("app-proxy")
    worker = {
        "authority": app_proxy_authority(config),
        "hostname": config.host,
        "port_start": first,
        "port_end": min(first + APP_PROXY_PORTS - 1, 65535),
        "admin_url": f"http://{config.host}:{config.port('app-proxy-admin')}",
    }
    env = {
        "BAI_COORDINATOR__DB__URL": config.pg_dsn,
        "BAI_COORDINATOR__AUTHZ__BIND": config.host,
        "BAI_COORDINATOR__AUTHZ__PORT": str(config.port("coordinator-authz")),
        "BAI_COORDINATOR__AUTHZ__APP_TOKEN_SECRET": stack_secret(config, "app-token-secret"),
        "BAI_COORDINATOR__INTERNAL_TOKEN": internal_token(config),
        "BAI_COORDINATOR__XDS__DIRECTORY": str(config.component_dir("coordinator") / "xds"),
        "BAI_COORDINATOR__XDS__LISTEN_ADDRESS": config.host,
        "BAI_COORDINATOR__LOCAL_WORKERS": json.dumps([worker]),
    }
    return _service(config, "coordinator", env)


def app_proxy(config: StackConfig) -> ProcessSpec:
    """The Envoy that routes browsers to apps in sessions, fed by the coordinator over ADS."""
    conf = config.component_dir("app-proxy") / "bootstrap.json"
    admin = config.port("app-proxy-admin")

    def prepare() -> None:
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(
            render_app_proxy_bootstrap(
                app_proxy_authority(config),
                config.component_dir("coordinator") / "xds",
                (config.host, config.port("coordinator-authz")),
                admin,
                ads_addr=(config.host, config.port("coordinator")),
                internal_token=internal_token(config),
            )
        )

    return ProcessSpec(
        name="app-proxy",
        argv=app_proxy_process_argv(conf, "warn"),
        port=admin,
        health=http_ok(f"http://{config.host}:{admin}/ready"),
        prepare=prepare,
        cwd=repo_root(),
    )


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
                storage_http_addr=(config.host, config.port("storage-http")),
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
register_component("storage", storage, replace=True)
register_component("agent", agent, replace=True)
register_component("coordinator", coordinator, replace=True)
register_component("envoy", envoy, replace=True)
register_component("app-proxy", app_proxy, replace=True)
