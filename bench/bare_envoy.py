"""A bare Envoy: one listener, the router filter only, one static upstream.

The benches run it beside the real path, with the same Envoy binary and
flags, so that their output can say how much of a gap to the baseline is
Envoy itself on this machine and how much is ours.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from platform_stack import process

from bai.coordinator.xds.bootstrap import app_proxy_process_argv
from bai.coordinator.xds.filters import hcm


def bare_envoy_bootstrap(listen_port: int, upstream_port: int) -> dict[str, Any]:
    """Our connection manager with only the router filter, in front of one plain
    static cluster on 127.0.0.1:`upstream_port`."""
    route = {"cluster": "upstream", "timeout": "0s"}
    vhost = {
        "name": "upstream",
        "domains": ["*"],
        "routes": [{"match": {"prefix": "/"}, "route": route}],
    }
    upstream = {"socket_address": {"address": "127.0.0.1", "port_value": upstream_port}}
    listen = {"socket_address": {"address": "127.0.0.1", "port_value": listen_port}}
    return {
        "static_resources": {
            "listeners": [
                {
                    "name": "bare",
                    "address": listen,
                    "filter_chains": [{"filters": [hcm("bare", [vhost], [])]}],
                }
            ],
            "clusters": [
                {
                    "name": "upstream",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": "upstream",
                        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": upstream}}]}],
                    },
                }
            ],
        },
    }


@contextmanager
def bare_envoy(
    listen_port: int, upstream_port: int, logs: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """The bare Envoy running (config and log under `logs`) for the block."""
    config = logs / "bare-envoy.json"
    config.write_text(json.dumps(bare_envoy_bootstrap(listen_port, upstream_port)))
    argv = app_proxy_process_argv(config, log_level="warning")
    with process(argv, {}, logs / "bare-envoy.log") as proc:
        yield proc
