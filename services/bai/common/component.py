"""Shared start-up of a bai component: typed config, logging, gRPC, metrics.

`load_component_config` merges defaults < etcd global < TOML < environment;
the local layers are read first only to learn where etcd is.
`placeholder_handler` serves a contract whose implementation lands later:
every method answers UNIMPLEMENTED with reason NOT_IMPLEMENTED, so callers
get a precise error instead of a connection failure.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf import descriptor_pool
from pydantic import BaseModel, ConfigDict, Field

from bai.common.config import load_config
from bai.common.errors import Unimplemented
from bai.common.global_config import load_global_config
from bai.common.grpc_errors import to_grpc_status


class EtcdConfig(BaseModel):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8121, ge=1, le=65535)
    # Shared configuration lives under "<prefix>/config/<component>/".
    prefix: str = "/bai"


class ComponentConfig(BaseModel):
    # Environment and etcd values arrive parsed ("2" becomes 2): a string field
    # such as the agent's cpu share must still take them.
    model_config = ConfigDict(coerce_numbers_to_str=True)

    bind: str = "127.0.0.1"
    grpc_port: int = Field(default=0, ge=0, le=65535)
    metrics_bind: str = "127.0.0.1"
    metrics_port: int = Field(default=0, ge=0, le=65535)
    log_level: str = "info"
    etcd: EtcdConfig = EtcdConfig()


C = TypeVar("C", bound=ComponentConfig)


async def load_component_config(
    model: type[C], component: str, path: Path | None, env_prefix: str
) -> C:
    local = load_config(model, path=path, env_prefix=env_prefix)
    if not local.etcd.enabled:
        return local
    shared = await load_global_config(
        local.etcd.host, local.etcd.port, local.etcd.prefix, component
    )
    return load_config(model, path=path, env_prefix=env_prefix, global_config=shared)


def placeholder_handler(service_name: str) -> grpc.GenericRpcHandler:
    """Answer every method of `service_name` with UNIMPLEMENTED/NOT_IMPLEMENTED."""
    service = descriptor_pool.Default().FindServiceByName(service_name)
    status = to_grpc_status(Unimplemented(f"{service_name} is not implemented in this release"))

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort_with_status(status)

    async def streaming(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort_with_status(status)
        yield  # pragma: no cover - makes this an async generator

    handlers = {}
    for method in service.methods:
        kind = (method.client_streaming, method.server_streaming)
        factory = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[kind]
        behaviour = streaming if kind[1] else unary
        handlers[method.name] = factory(
            behaviour,
            request_deserializer=lambda b: b,
            response_serializer=lambda b: b,
        )
    return grpc.method_handlers_generic_handler(service_name, handlers)


def thin_server_spec(
    component: str,
    config: ComponentConfig,
    services: list[str],
    extra_ports: list[int] | None = None,
) -> Any:
    """A ServerSpec that serves `services` as placeholders (health/reflection/metrics real)."""
    from bai.common.server import ServerSpec

    def register(server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers([placeholder_handler(name) for name in services])

    return ServerSpec(
        component=component,
        bind=config.bind,
        grpc_port=config.grpc_port,
        metrics_bind=config.metrics_bind,
        metrics_port=config.metrics_port,
        service_names=services,
        register=register,
        extra_ports=list(extra_ports or []),
    )


def component_main(
    component: str,
    model: type[C],
    services: list[str],
    argv: list[str] | None,
    extra_ports: Any = None,
) -> int:
    """`bai <component> start [--config FILE]` for a component served by placeholders."""
    import argparse

    from bai.common.logs import setup_logging
    from bai.common.server import run_event_loop, run_until_signalled

    parser = argparse.ArgumentParser(prog=f"bai {component}", description=f"The bai {component}.")
    parser.add_argument(
        "--config", type=Path, help=f"TOML config file (BAI_{component.upper()}__* overrides)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "start",
        help=f"serve the {component} gRPC API with health, reflection and /metrics "
        f"(contracts: {', '.join(services)})",
    )
    args = parser.parse_args(argv)

    async def run() -> None:
        config = await load_component_config(
            model, component, args.config, f"BAI_{component.upper()}"
        )
        setup_logging(component, config.log_level)
        logging.getLogger(f"bai.{component}").info(
            "starting", extra={"config": config.model_dump(mode="json")}
        )
        ports = extra_ports(config) if extra_ports else []
        await run_until_signalled(thin_server_spec(component, config, services, ports))

    run_event_loop(run())
    return 0
