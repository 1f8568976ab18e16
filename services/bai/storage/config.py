"""The storage proxy's typed config (`bai storage start`; env prefix BAI_STORAGE__).

Volumes come from etcd (`<prefix>/config/storage/volumes/<name>/path`, ...)
or, below it, from the TOML file; the JWT secret for transfer tokens is
shared by every proxy the same way.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from bai.common.component import ComponentConfig


class VolumeConfig(BaseModel):
    backend: Literal["vfs"] = "vfs"
    # Directory holding the volume's quota scopes and folders on this host.
    path: str
    # Where agents see the same export ("" = path).
    mount_path: str = ""


class StorageConfig(ComponentConfig):
    # FileService, for clients through Envoy.
    grpc_port: int = Field(default=6021, ge=0, le=65535)
    # StorageService, for the manager.
    manager_port: int = Field(default=6022, ge=0, le=65535)
    # Plain-HTTP transfers (/storage/v1/download, /storage/v1/upload), through Envoy.
    http_port: int = Field(default=6023, ge=0, le=65535)
    metrics_port: int = Field(default=16023, ge=0, le=65535)
    volumes: dict[str, VolumeConfig] = Field(default_factory=dict)
    # HS256 secret of transfer tokens; every proxy of a cluster shares it.
    jwt_secret: str = Field(default="", repr=False)
    # Shared secret the manager sends in "x-bai-storage-auth-token"; "" = none.
    manager_token: str = Field(default="", repr=False)
    # What IssueTransferToken tells clients to dial (the gateway).
    client_address: str = "http://127.0.0.1:8090"
    # Abandoned partial uploads are removed after this long.
    upload_staging_ttl_seconds: float = Field(default=24 * 3600, gt=0)
    upload_sweep_interval_seconds: float = Field(default=3600, gt=0)
