"""Coordinator process: `bai coordinator start`. Serves its contracts as placeholders for now."""

from __future__ import annotations

from pydantic import Field

from bai.api.coordinator.v1 import coordinator_pb2  # noqa: F401 - registers the contract
from bai.common.component import ComponentConfig, component_main

SERVICES = ["bai.api.coordinator.v1.CircuitService", "bai.api.coordinator.v1.WorkerService"]


class CoordinatorConfig(ComponentConfig):
    grpc_port: int = Field(default=10200, ge=0, le=65535)
    metrics_port: int = Field(default=10201, ge=0, le=65535)


def main(argv: list[str] | None = None) -> int:
    return component_main("coordinator", CoordinatorConfig, SERVICES, argv)


if __name__ == "__main__":
    raise SystemExit(main())
