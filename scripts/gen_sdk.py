#!/usr/bin/env python3
"""Write clients/bai/client/_generated.py: the typed SDK facade over the gRPC stubs.

For every service in the public packages (bai.client._naming.PACKAGES, internal
services left out) it emits a sync class (``DomainService``) and an async one
(``AsyncDomainService``) with one method per RPC:

* unary RPCs: ``create_domain(request=None, *, domain=..., request_id=...,
  timeout=None, metadata=(), retry=None) -> CreateDomainResponse``; one keyword
  per request field, or a whole request message, or both (keywords win);
* server streams: an iterator (async iterator) of responses;
* client/bidi streams: take an iterable of requests;
* paged lists (``List*`` with page_token/next_page_token and one repeated
  message field): also ``iter_<items>()`` following next_page_token.

Reads (Get*/List*/Watch*/WhoAmI) and calls whose request has ``request_id`` are
marked idempotent (retried on UNAVAILABLE); the SDK fills an empty request_id.
Docstrings come from the proto comments in gen/descriptor/bai.binpb; the output
is passed through `ruff format`, so formatting the tree never makes it stale.

Run after scripts/gen_protos.py (which this script does not change):

    .venv/bin/python scripts/gen_sdk.py           # rewrite _generated.py
    .venv/bin/python scripts/gen_sdk.py --check   # exit 1 when it is stale
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    FieldDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "gen" / "python"), str(ROOT / "services"), str(ROOT / "clients")]


def _load_naming() -> ModuleType:
    """bai.client._naming by path: importing bai.client would import the file we write."""
    path = ROOT / "clients" / "bai" / "client" / "_naming.py"
    spec = importlib.util.spec_from_file_location("_bai_sdk_naming", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_naming = _load_naming()

OUT = ROOT / "clients" / "bai" / "client" / "_generated.py"
DESCRIPTOR_SET = ROOT / "gen" / "descriptor" / "bai.binpb"


def services() -> list[ServiceDescriptor]:
    """Every public service of every *_pb2 module of the SDK's packages, as found now."""
    found: list[ServiceDescriptor] = []
    for package in _naming.PACKAGES:
        pkg = importlib.import_module(package)
        for name in sorted(m.name for m in pkgutil.iter_modules(pkg.__path__)):
            if name.endswith("_pb2"):
                module = importlib.import_module(f"{package}.{name}")
                found += [
                    s
                    for s in module.DESCRIPTOR.services_by_name.values()
                    if s.full_name not in _naming.INTERNAL_SERVICES
                ]
    return found


def load_comments() -> dict[tuple[str, tuple[int, ...]], str]:
    comments: dict[tuple[str, tuple[int, ...]], str] = {}
    if not DESCRIPTOR_SET.exists():
        return comments
    fds = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())
    for file in fds.file:
        for loc in file.source_code_info.location:
            if loc.leading_comments:
                comments[(file.name, tuple(loc.path))] = loc.leading_comments
    return comments


@dataclass
class Imports:
    modules: dict[str, str]  # module -> alias

    def ref(self, desc: Descriptor | EnumDescriptor) -> str:
        module = _naming.module_of(desc.file.name)
        alias = self.modules.setdefault(module, _naming.alias_of(module))
        return f"{alias}.{desc.full_name.removeprefix(desc.file.package + '.')}"

    def grpc_ref(self, service: ServiceDescriptor, suffix: str) -> str:
        module = _naming.module_of(service.file.name) + "_grpc"
        alias = self.modules.setdefault(module, _naming.alias_of(module))
        return f"{alias}.{service.name}{suffix}"


def param(field: FieldDescriptor) -> str:
    return _naming.param_name(field.name)


def docstring(text: str, indent: str, extra: list[str]) -> list[str]:
    lines = [ln.rstrip() for ln in text.strip("\n").splitlines()]
    lines = [ln[1:] if ln.startswith(" ") else ln for ln in lines]
    lines = [*lines, *([""] if lines and extra else []), *extra]
    lines = [ln.replace("\\", "\\\\").replace('"""', '\\"\\"\\"') for ln in lines]
    if not lines:
        return []
    out = [f'{indent}"""{lines[0]}']
    out += [f"{indent}{ln}" if ln else "" for ln in lines[1:]]
    out[-1] += '"""' if len(lines) == 1 else f'\n{indent}"""'
    return out


@dataclass
class Rpc:
    method: MethodDescriptor
    service: ServiceDescriptor
    comment: str

    @property
    def path(self) -> str:
        return f"/{self.service.full_name}/{self.method.name}"

    @property
    def fills_request_id(self) -> bool:
        field = self.method.input_type.fields_by_name.get("request_id")
        return field is not None and field.type == FieldDescriptor.TYPE_STRING

    @property
    def idempotent(self) -> bool:
        return _naming.is_read(self.method.name) or self.fills_request_id

    @property
    def page_field(self) -> FieldDescriptor | None:
        """The repeated item field of a paged List RPC; None for other RPCs."""
        req, resp, m = self.method.input_type, self.method.output_type, self.method
        paged = "page_token" in req.fields_by_name and "next_page_token" in resp.fields_by_name
        if not m.name.startswith("List") or m.server_streaming or not paged:
            return None
        items = [
            f
            for f in resp.fields
            if f.is_repeated
            and f.type == f.TYPE_MESSAGE
            and not f.message_type.GetOptions().map_entry
        ]
        return items[0] if len(items) == 1 else None


# Method templates; `ruff format` lays the result out (see ruff_format).
KWARGS = "timeout: float | None = None, metadata: Metadata = ()"
UNARY = """
    {adef} {name}(self, request: {req} | None = None, *, {params}{kwargs}, retry: bool | None = None
    ) -> {ret}:
{doc}
        req = build_request({req}, request, {{{values}}}{fill})
        return {aw}self._t.{kind}(self._stub.{rpc}, "{path}", req, idempotent={idempotent},
            timeout=timeout, metadata=metadata, retry=retry)
"""
PAGER = """
    {adef} {name}(self, request: {req} | None = None, *, {params}{kwargs}, retry: bool | None = None
    ) -> {ret}:
        \"\"\"Every item of {lister}(), following next_page_token.\"\"\"
        req = build_request({req}, request, {{{values}}})
        while True:
            page = {aw}self.{lister}(req, timeout=timeout, metadata=metadata, retry=retry)
{yield_}
            if not page.next_page_token:
                return
            req.page_token = page.next_page_token
"""
STREAMING = """
    {adef} {name}(self, requests: {requests}, *, {kwargs}) -> {ret}:
{doc}
        return {aw}self._t.{kind}(self._stub.{rpc}, "{path}", requests, timeout=timeout,
            metadata=metadata)
"""
SERVICE = """

class {cls}:
{doc}

    def __init__(self, transport: {transport}) -> None:
        self._t = transport
        self._stub{annotation} = {stub}(transport.channel)
"""


class Writer:
    def __init__(self, imports: Imports) -> None:
        self.imports = imports
        self.lines: list[str] = []

    def emit(self, text: str) -> None:
        self.lines.extend(text.splitlines())

    def fields(self, rpc: Rpc, skip: frozenset[str] = frozenset()) -> dict[str, str]:
        """Keyword parameters and the dict that hands them to build_request."""
        fields = [f for f in rpc.method.input_type.fields if f.name not in skip]
        types = [_naming.python_type(f, self.imports.ref) for f in fields]
        return {
            "params": "".join(
                f"{param(f)}: {t} | None = None, " for f, t in zip(fields, types, strict=True)
            ),
            "values": ", ".join(f'"{f.name}": {param(f)}' for f in fields),
            "req": self.imports.ref(rpc.method.input_type),
            "kwargs": KWARGS,
        }

    def method(self, rpc: Rpc, is_async: bool) -> None:
        m = rpc.method
        note = "Idempotent: retried on UNAVAILABLE." if rpc.idempotent else ""
        note = note or "Not retried unless retry=True."
        if rpc.fills_request_id:
            note += " An empty request_id is filled with a fresh UUID."
        if m.client_streaming:
            note = "Never retried: a stream of requests cannot be replayed."
        elif m.server_streaming and rpc.idempotent:
            note = "Retried on UNAVAILABLE until the first response arrives."
        resp = self.imports.ref(m.output_type)
        fmt: dict[str, object] = {
            "name": _naming.method_name(m.name),
            "rpc": m.name,
            "path": rpc.path,
            "doc": "\n".join(docstring(rpc.comment, "        ", [note])),
            "idempotent": rpc.idempotent,
            "ret": resp,
            "adef": "async def" if is_async else "def",
            "aw": "await " if is_async else "",
            "fill": ", fill_request_id=True" if rpc.fills_request_id else "",
            "req": self.imports.ref(m.input_type),
            "kwargs": KWARGS,
        }
        if not m.client_streaming:  # (referencing field types adds imports)
            fmt.update(self.fields(rpc))
        stream_of = f"AsyncIterator[{resp}]" if is_async else f"Iterator[{resp}]"
        if m.client_streaming:  # client and bidi streams take an iterable of requests
            req = fmt["req"]
            fmt["requests"] = (
                f"AsyncIterable[{req}] | Iterable[{req}]" if is_async else (f"Iterable[{req}]")
            )
            if m.server_streaming:
                fmt.update(adef="def", aw="", kind="bidi_stream", ret=stream_of)
            else:
                fmt.update(kind="client_stream")
            self.emit(STREAMING.format(**fmt))
        elif m.server_streaming:  # returns an (async) generator: a plain def
            fmt.update(adef="def", aw="", kind="server_stream", ret=stream_of)
            self.emit(UNARY.format(**fmt))
        else:
            self.emit(UNARY.format(kind="unary", **fmt))
            if rpc.page_field is not None:
                self.pager(rpc, rpc.page_field, is_async)

    def pager(self, rpc: Rpc, items: FieldDescriptor, is_async: bool) -> None:
        item = self.imports.ref(items.message_type)
        yield_ = f"            yield from page.{items.name}"
        if is_async:
            yield_ = f"            for item in page.{items.name}:\n                yield item"
        self.emit(
            PAGER.format(
                adef="async def" if is_async else "def",
                aw="await " if is_async else "",
                name=_naming.pager_name(rpc.method.name),
                lister=_naming.method_name(rpc.method.name),
                ret=f"AsyncIterator[{item}]" if is_async else f"Iterator[{item}]",
                yield_=yield_,
                **self.fields(rpc, frozenset({"page_token"})),
            )
        )

    def service(
        self, service: ServiceDescriptor, rpcs: list[Rpc], comment: str, is_async: bool
    ) -> None:
        self.emit(
            SERVICE.format(
                cls=("Async" if is_async else "") + service.name,
                doc="\n".join(docstring(comment or f"{service.full_name}.", "    ", [])),
                transport="AsyncTransport" if is_async else "SyncTransport",
                annotation=f": {self.imports.grpc_ref(service, 'AsyncStub')}" if is_async else "",
                stub=self.imports.grpc_ref(service, "Stub"),
            )
        )
        for rpc in rpcs:
            self.method(rpc, is_async)


def import_lines(imports: Imports, body: str) -> list[str]:
    """Imports in ruff's isort order; typing names only when the body uses them."""
    abc = ["AsyncIterable", "AsyncIterator", "Iterable", "Iterator", "Mapping"]
    used = [n for n in abc if re.search(rf"(?<![A-Za-z]){n}\[", body)]
    dt = [n for n in ("datetime", "timedelta") if re.search(rf"\b{n}\b", body)]
    lines = ["from __future__ import annotations", ""]
    lines += [f"from collections.abc import {', '.join(used)}"] if used else []
    lines += [f"from datetime import {', '.join(dt)}"] if dt else []
    names: dict[str, list[str]] = {
        "bai.client._requests": ["build_request"],
        "bai.client._transport": ["AsyncTransport", "Metadata", "SyncTransport"],
    }
    for module, alias in imports.modules.items():
        package, stem = module.rsplit(".", 1)
        names.setdefault(package, []).append(stem if stem == alias else f"{stem} as {alias}")
    third = sorted(p for p in names if not p.startswith("bai."))
    first = sorted(p for p in names if p.startswith("bai."))
    for section in (third, first):  # isort sections: third party, first party (bai)
        lines.append("")
        for package in section:
            plain = sorted(n for n in names[package] if " as " not in n)
            lines += [f"from {package} import {', '.join(plain)}"] if plain else []
            # ruff's isort keeps "import x as y" in statements of their own
            aliased = sorted(n for n in names[package] if " as " in n)
            lines += [f"from {package} import {n}" for n in aliased]
    return lines


HEADER = '''"""Typed facades over the gRPC stubs. Generated by scripts/gen_sdk.py; do not edit.

Regenerate after the protos change: .venv/bin/python scripts/gen_sdk.py
"""

# The timeout parameters are gRPC deadlines passed through, not asyncio timeouts.
# ruff: noqa: ASYNC109
'''


def render() -> str:
    comments = load_comments()
    imports = Imports({})
    body = Writer(imports)
    plan: list[tuple[ServiceDescriptor, str, list[Rpc]]] = []
    for sv in services():
        file, index = sv.file.name, sv.index
        rpcs = [Rpc(m, sv, comments.get((file, (6, index, 2, m.index)), "")) for m in sv.methods]
        plan.append((sv, comments.get((file, (6, index)), ""), rpcs))
    for is_async in (False, True):
        for sv, comment, rpcs in plan:
            body.service(sv, rpcs, comment, is_async)
    for prefix in ("", "Async"):
        attrs = [(_naming.service_attribute(sv.name), prefix + sv.name) for sv, _, _ in plan]
        body.emit(
            f"\n\nclass {prefix or 'Sync'}Services:\n"
            '    """Every public service, one attribute each."""\n\n'
            + "".join(f"    {attr}: {cls}\n" for attr, cls in attrs)
            + f"\n    def __init__(self, transport: {prefix or 'Sync'}Transport) -> None:\n"
            + "".join(f"        self.{attr} = {cls}(transport)\n" for attr, cls in attrs)
        )
    body.emit(
        "\n\n# Full service name -> attribute of Client / AsyncClient.\n"
        "SERVICE_ATTRIBUTES: dict[str, str] = {\n"
        + "".join(
            f'    "{sv.full_name}": "{_naming.service_attribute(sv.name)}",\n' for sv, _, _ in plan
        )
        + "}"
    )
    exported = sorted(
        [f"{p}{sv.name}" for sv, _, _ in plan for p in ("", "Async")]
        + ["AsyncServices", "SyncServices"]
    )
    text = (
        "\n".join(
            [
                HEADER,
                *import_lines(imports, "\n".join(body.lines)),
                "",
                "__all__ = [",
                '    "SERVICE_ATTRIBUTES",',
                *[f'    "{n}",' for n in exported],
                "]",
                *body.lines,
            ]
        )
        + "\n"
    )
    text = ruff_format(text)
    long = [ln for ln in text.splitlines() if len(ln) > 100]
    if long:
        raise SystemExit(f"generated lines over 100 characters: {long[:3]}")
    return text


def ruff_format(text: str) -> str:
    """The text as ``ruff format`` (the project's formatter) leaves it, so that formatting
    the tree never makes the committed file stale. Needs ruff (a dev dependency)."""
    ruff = Path(sys.executable).parent / "ruff"
    command = str(ruff) if ruff.exists() else shutil.which("ruff")
    if command is None:
        raise SystemExit("ruff not found: install the dev dependencies (pip install -e .[dev])")
    result = subprocess.run(
        [command, "format", "--stdin-filename", str(OUT.relative_to(ROOT)), "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"ruff format failed: {result.stderr}")
    return result.stdout


def main(argv: list[str]) -> int:
    text = render()
    if argv[1:] == ["--check"]:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is stale; run scripts/gen_sdk.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
