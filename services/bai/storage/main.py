"""Storage proxy process: `bai storage start`. Serves its contracts as placeholders for now.

Clients reach FileService on the client port (6021, through Envoy); the
manager reaches StorageService on the manager port (6022).
"""

from __future__ import annotations

from pydantic import Field

from bai.api.storage.v1 import file_pb2, storage_pb2  # noqa: F401 - register the contracts
from bai.common.component import ComponentConfig, component_main

SERVICES = ["bai.api.storage.v1.FileService", "bai.api.storage.v1.StorageService"]


class StorageConfig(ComponentConfig):
    grpc_port: int = Field(default=6021, ge=0, le=65535)
    manager_port: int = Field(default=6022, ge=0, le=65535)
    metrics_port: int = Field(default=16023, ge=0, le=65535)


def main(argv: list[str] | None = None) -> int:
    return component_main(
        "storage", StorageConfig, SERVICES, argv, extra_ports=lambda c: [c.manager_port]
    )


if __name__ == "__main__":
    raise SystemExit(main())
