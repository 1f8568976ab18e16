#!/usr/bin/env python3
"""Rewrite envoy/gateway.yaml from bai.gateway.render_default_config.

Run after scripts/gen_protos.py whenever services are added or removed (the
gateway's JSON transcoder lists them). `--check` exits 1 if the file is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bai.gateway import render_default_config

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "envoy" / "gateway.yaml"


def main(argv: list[str]) -> int:
    rendered = render_default_config(ROOT)
    if argv[1:] == ["--check"]:
        if not OUT.exists() or OUT.read_text() != rendered:
            print(f"{OUT.relative_to(ROOT)} is stale; run scripts/render_envoy.py", file=sys.stderr)
            return 1
        return 0
    if argv[1:]:
        print("usage: render_envoy.py [--check]", file=sys.stderr)
        return 2
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(rendered)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
