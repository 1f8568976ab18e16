"""A small Docker Registry HTTP API v2 server for tests (no registry is reachable here).

It serves images taken from the local dockerd with `docker save`: each layer
tar is served uncompressed (digest = its diff id, media type
"application/vnd.docker.image.rootfs.diff.tar", which dockerd accepts) behind a
schema2 manifest built from the saved config. Read-only: GET /v2/,
/v2/_catalog, /v2/<name>/tags/list, HEAD/GET /v2/<name>/manifests/<tag|digest>
and /v2/<name>/blobs/<digest>, optionally behind basic auth. dockerd treats
127.0.0.0/8 registries as insecure, so it pulls from this over plain http.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar"
CHUNK = 1 << 20


@dataclass
class Blob:
    path: Path | None
    data: bytes = b""

    @property
    def size(self) -> int:
        return self.path.stat().st_size if self.path is not None else len(self.data)


@dataclass
class Store:
    # repository -> tag -> manifest bytes; digest -> blob.
    tags: dict[str, dict[str, bytes]] = field(default_factory=dict)
    manifests: dict[str, bytes] = field(default_factory=dict)
    blobs: dict[str, Blob] = field(default_factory=dict)
    # Where saved layers live; remove it when done (shutil.rmtree).
    workdir: Path = field(default_factory=Path)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def load_saved_image(store: Store, source: str, target: str, workdir: Path) -> str:
    """`docker save source` into workdir and publish it as repository:tag `target`.

    Returns the manifest digest."""
    repository, _, tag = target.rpartition(":")
    saved = workdir / hashlib.sha256(source.encode()).hexdigest()[:16]
    saved.mkdir(parents=True, exist_ok=True)
    archive = saved / "image.tar"
    subprocess.run(["docker", "save", "-o", str(archive), source], check=True, timeout=300)
    with tarfile.open(archive) as tar:
        tar.extractall(saved, filter="data")
    archive.unlink()
    (entry,) = json.loads((saved / "manifest.json").read_text())
    config = (saved / entry["Config"]).read_bytes()
    store.blobs[_digest(config)] = Blob(None, config)
    layers = []
    for name in entry["Layers"]:
        path = saved / name
        digest = _sha256_file(path)
        store.blobs[digest] = Blob(path)
        layers.append({"mediaType": LAYER_TYPE, "size": path.stat().st_size, "digest": digest})
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "size": len(config), "digest": _digest(config)},
            "layers": layers,
        },
        indent=2,
    ).encode()
    store.manifests[_digest(manifest)] = manifest
    store.tags.setdefault(repository, {})[tag] = manifest
    return _digest(manifest)


def _handler(store: Store, credentials: str | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _authorized(self) -> bool:
            if credentials is None:
                return True
            return self.headers.get("Authorization", "") == f"Basic {credentials}"

        def _send(
            self, status: int, body: bytes = b"", content_type: str = "application/json", **h: str
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
            for key, value in h.items():
                self.send_header(key.replace("_", "-"), value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str, **h: str) -> None:
            body = json.dumps({"errors": [{"code": code, "message": code.lower()}]}).encode()
            self._send(status, body, **h)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            if not self._authorized():
                self._error(401, "UNAUTHORIZED", WWW_Authenticate='Basic realm="mini-registry"')
                return
            path = self.path.split("?", 1)[0]
            if path in ("/v2", "/v2/"):
                self._send(200, b"{}")
            elif path == "/v2/_catalog":
                self._send(200, json.dumps({"repositories": sorted(store.tags)}).encode())
            elif path.startswith("/v2/") and path.endswith("/tags/list"):
                name = path[len("/v2/") : -len("/tags/list")]
                if name not in store.tags:
                    self._error(404, "NAME_UNKNOWN")
                    return
                tags = sorted(store.tags[name])
                self._send(200, json.dumps({"name": name, "tags": tags}).encode())
            elif "/manifests/" in path:
                self._manifest(*path[len("/v2/") :].split("/manifests/", 1))
            elif "/blobs/" in path:
                self._blob(path.rsplit("/blobs/", 1)[1])
            else:
                self._error(404, "UNSUPPORTED")

        def _manifest(self, name: str, reference: str) -> None:
            if reference.startswith("sha256:"):
                manifest = store.manifests.get(reference)
            else:
                manifest = store.tags.get(name, {}).get(reference)
            if manifest is None:
                self._error(404, "MANIFEST_UNKNOWN")
                return
            self._send(200, manifest, MANIFEST_TYPE, Docker_Content_Digest=_digest(manifest))

        def _blob(self, digest: str) -> None:
            blob = store.blobs.get(digest)
            if blob is None:
                self._error(404, "BLOB_UNKNOWN")
                return
            if blob.path is None:
                self._send(200, blob.data, "application/octet-stream", Docker_Content_Digest=digest)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(blob.size))
            self.send_header("Docker-Content-Digest", digest)
            self.end_headers()
            if self.command == "HEAD":
                return
            with blob.path.open("rb") as f:
                shutil.copyfileobj(f, self.wfile, CHUNK)

    return Handler


def saved_images(images: dict[str, str]) -> Store:
    """A store of `images` (local docker ref -> "<repository>:<tag>"); the same source
    may be listed under several targets (saved once each)."""
    store = Store(workdir=Path(tempfile.mkdtemp(prefix="mini-registry-")))
    for source, target in images.items():
        load_saved_image(store, source, target, store.workdir)
    return store


def publish(store: Store, existing: str, target: str) -> None:
    """Serve the image of repository:tag `existing` also as `target`."""
    repository, _, tag = existing.rpartition(":")
    manifest = store.tags[repository][tag]
    new_repository, _, new_tag = target.rpartition(":")
    store.tags.setdefault(new_repository, {})[new_tag] = manifest


class MiniRegistry:
    """Serve `store` on 127.0.0.1:<free port>; with username set, every request needs
    that basic auth. Several registries may serve one store."""

    def __init__(self, store: Store, username: str | None = None, password: str = "") -> None:
        self.store = store
        credentials = None
        if username is not None:
            credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(store, credentials))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        """ "127.0.0.1:<port>": the registry part of canonical image names."""
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def reference(self, target: str) -> str:
        return f"{self.host}/{target}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
