"""Prometheus: scrapes itself and whatever the manager's HTTP service discovery lists."""

from __future__ import annotations

import json
from pathlib import Path

from bai.stack.config import StackConfig
from bai.stack.health import http_ok
from bai.stack.install import binary
from bai.stack.spec import ProcessSpec

NAME = "prometheus"
CONFIG_FILE = "prometheus.yml"


def _q(value: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(value)


def render_config(
    listen: str,
    service_discovery_url: str,
    *,
    scrape_interval: str = "15s",
    sd_refresh_interval: str = "15s",
) -> str:
    """prometheus.yml: a self-scrape job and an ``http_sd_configs`` job ``bai``."""
    return "\n".join(
        [
            "# Written by bai.stack; rewritten on every `bai stack up`.",
            "global:",
            f"  scrape_interval: {scrape_interval}",
            f"  evaluation_interval: {scrape_interval}",
            "scrape_configs:",
            "  - job_name: prometheus",
            "    static_configs:",
            f"      - targets: [{_q(listen)}]",
            "  - job_name: bai",
            "    http_sd_configs:",
            f"      - url: {_q(service_discovery_url)}",
            f"        refresh_interval: {sd_refresh_interval}",
            "",
        ]
    )


def write_config(config: StackConfig) -> Path:
    base = config.component_dir(NAME)
    (base / "data").mkdir(parents=True, exist_ok=True)
    path = base / CONFIG_FILE
    listen = f"{config.host}:{config.port(NAME)}"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(render_config(listen, config.service_discovery_url))
    tmp.replace(path)
    return path


def spec(config: StackConfig) -> ProcessSpec:
    port = config.port(NAME)
    base = config.component_dir(NAME)
    argv = [
        str(binary("prometheus")),
        f"--config.file={base / CONFIG_FILE}",
        f"--storage.tsdb.path={base / 'data'}",
        f"--web.listen-address={config.host}:{port}",
    ]
    if config.ephemeral:
        argv.append("--storage.tsdb.retention.time=1h")

    def prepare() -> None:
        write_config(config)

    return ProcessSpec(
        name=NAME,
        argv=argv,
        port=port,
        health=http_ok(f"http://{config.host}:{port}/-/ready"),
        cwd=base,
        prepare=prepare,
    )
