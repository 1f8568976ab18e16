#!/usr/bin/env python3
"""Regenerate everything derived from proto/: Python stubs and the descriptor set.

Outputs (all committed, CI fails on any diff):
  gen/python/bai/api/**      *_pb2.py, *_pb2.pyi, *_pb2_grpc.py, *_pb2_grpc.pyi
  gen/descriptor/bai.binpb   FileDescriptorSet with imports, for Envoy's
                             gRPC-JSON transcoder and for tooling.
  clients/web/src/gen/**     TypeScript (protoc-gen-es) for the browser UI, when
                             node_modules/.bin/buf exists (`npm ci` first);
                             template: clients/web/buf.gen.yaml.

Third-party protos (google/api, google/rpc) come from the installed
googleapis-common-protos package and are copied to proto/third_party (ignored
by git) so that buf sees the same files protoc does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grpc_tools
from google.api import annotations_pb2

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
THIRD_PARTY = PROTO / "third_party"
OUT_PY = ROOT / "gen" / "python"
OUT_DESC = ROOT / "gen" / "descriptor" / "bai.binpb"
BUF = ROOT / "node_modules" / ".bin" / "buf"
WEB_TEMPLATE = ROOT / "clients" / "web" / "buf.gen.yaml"


def vendor_third_party() -> None:
    site = Path(annotations_pb2.__file__).resolve().parent.parent
    if THIRD_PARTY.exists():
        shutil.rmtree(THIRD_PARTY)
    for pkg in ("api", "rpc"):
        for src in (site / pkg).rglob("*.proto"):
            dst = THIRD_PARTY / "google" / pkg / src.relative_to(site / pkg)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)


def main() -> int:
    global OUT_PY, OUT_DESC
    buf_output: list[str] = []
    # --check-into DIR: compile into DIR instead of gen/ (for trying contracts
    # without touching the committed output).
    if len(sys.argv) == 3 and sys.argv[1] == "--check-into":
        OUT_PY = Path(sys.argv[2]).resolve() / "python"
        OUT_DESC = Path(sys.argv[2]).resolve() / "bai.binpb"
        buf_output = ["--output", str(Path(sys.argv[2]).resolve() / "ts")]
    vendor_third_party()
    sources = sorted(str(p.relative_to(PROTO)) for p in (PROTO / "bai").rglob("*.proto"))
    builtin = Path(grpc_tools.__file__).resolve().parent / "_proto"
    if (OUT_PY / "bai").exists():
        shutil.rmtree(OUT_PY / "bai")
    OUT_PY.mkdir(parents=True, exist_ok=True)
    OUT_DESC.parent.mkdir(parents=True, exist_ok=True)
    bindir = Path(sys.executable).parent
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO}",
        f"-I{THIRD_PARTY}",
        f"-I{builtin}",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={OUT_PY}",
        f"--grpc_python_out={OUT_PY}",
        f"--mypy_out={OUT_PY}",
        f"--mypy_grpc_out={OUT_PY}",
        *sources,
    ]
    subprocess.run(cmd, check=True, cwd=PROTO)
    # The descriptor set also carries google.rpc.Status and the error detail
    # types, so Envoy's transcoder can render error bodies as JSON.
    descriptor_cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO}",
        f"-I{THIRD_PARTY}",
        f"-I{builtin}",
        "--include_imports",
        "--include_source_info",
        f"--descriptor_set_out={OUT_DESC}",
        *sources,
        "google/rpc/status.proto",
        "google/rpc/error_details.proto",
    ]
    subprocess.run(descriptor_cmd, check=True, cwd=PROTO)
    # Mark the generated tree as typed; `bai` and `bai.api` stay namespace
    # packages shared with services/ and clients/.
    for pkg in (OUT_PY / "bai" / "api").rglob("*"):
        if pkg.is_dir():
            (pkg / "__init__.py").touch()
    (OUT_PY / "bai" / "api" / "py.typed").touch()
    print(f"generated {len(sources)} protos into {OUT_PY}")
    if BUF.exists():
        template = str(WEB_TEMPLATE.relative_to(ROOT))
        subprocess.run(
            [str(BUF), "generate", "--template", template, *buf_output], check=True, cwd=ROOT
        )
        print(f"generated TypeScript with {template}")
    else:
        print("node_modules/.bin/buf missing (run `npm ci`): TypeScript client not regenerated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
