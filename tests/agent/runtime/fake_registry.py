"""An in-memory Docker registry (distribution API v2, the part `docker push` uses) on
127.0.0.1 over plain HTTP, which dockerd accepts there; Basic auth when given one."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}


@dataclass
class Upload:
    sha256: Any = field(default_factory=hashlib.sha256)
    size: int = 0


@dataclass
class FakeRegistry:
    username: str
    password: str
    port: int = 0
    # digest -> size of every blob received.
    blobs: dict[str, int] = field(default_factory=dict)
    # "name:tag" -> manifest bytes.
    manifests: dict[str, bytes] = field(default_factory=dict)
    _uploads: dict[str, Upload] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _authorized(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return request.headers.get("Authorization", "") == f"Basic {expected}"

    @web.middleware
    async def check_auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self._authorized(request):
            headers = {**API_HEADER, "WWW-Authenticate": 'Basic realm="fake"'}
            refusal = {"errors": [{"code": "UNAUTHORIZED"}]}
            return web.json_response(refusal, status=401, headers=headers)
        return await handler(request)

    async def base(self, request: web.Request) -> web.Response:
        return web.json_response({}, headers=API_HEADER)

    async def head_blob(self, request: web.Request) -> web.Response:
        size = self.blobs.get(request.match_info["digest"])
        if size is None:
            return web.Response(status=404, headers=API_HEADER)
        return web.Response(headers={**API_HEADER, "Content-Length": str(size)})

    def _upload_location(self, request: web.Request, upload: str) -> str:
        return f"/v2/{request.match_info['name']}/blobs/uploads/{upload}"

    async def start_upload(self, request: web.Request) -> web.Response:
        upload = uuid.uuid4().hex
        self._uploads[upload] = Upload()
        headers = {
            **API_HEADER,
            "Location": self._upload_location(request, upload),
            "Docker-Upload-UUID": upload,
            "Range": "0-0",
        }
        return web.Response(status=202, headers=headers)

    async def _receive(self, request: web.Request) -> Upload:
        upload = self._uploads[request.match_info["upload"]]
        async for chunk in request.content.iter_chunked(1 << 16):
            upload.sha256.update(chunk)
            upload.size += len(chunk)
        return upload

    async def patch_upload(self, request: web.Request) -> web.Response:
        upload = await self._receive(request)
        headers = {
            **API_HEADER,
            "Location": self._upload_location(request, request.match_info["upload"]),
            "Range": f"0-{max(upload.size - 1, 0)}",
        }
        return web.Response(status=202, headers=headers)

    async def finish_upload(self, request: web.Request) -> web.Response:
        upload = await self._receive(request)
        del self._uploads[request.match_info["upload"]]
        name = f"sha256:{upload.sha256.hexdigest()}"
        if name != request.query.get("digest"):
            return web.json_response({"errors": [{"code": "DIGEST_INVALID"}]}, status=400)
        self.blobs[name] = upload.size
        location = f"/v2/{request.match_info['name']}/blobs/{name}"
        headers = {**API_HEADER, "Location": location, "Docker-Content-Digest": name}
        return web.Response(status=201, headers=headers)

    async def put_manifest(self, request: web.Request) -> web.Response:
        body = await request.read()
        digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
        self.manifests[f"{request.match_info['name']}:{request.match_info['tag']}"] = body
        location = f"/v2/{request.match_info['name']}/manifests/{digest}"
        headers = {**API_HEADER, "Location": location, "Docker-Content-Digest": digest}
        return web.Response(status=201, headers=headers)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.check_auth], client_max_size=0)
        name = "{name:.+?}"
        app.router.add_get("/v2/", self.base)
        app.router.add_route("HEAD", f"/v2/{name}/blobs/{{digest}}", self.head_blob)
        app.router.add_post(f"/v2/{name}/blobs/uploads/", self.start_upload)
        app.router.add_patch(f"/v2/{name}/blobs/uploads/{{upload}}", self.patch_upload)
        app.router.add_put(f"/v2/{name}/blobs/uploads/{{upload}}", self.finish_upload)
        app.router.add_put(f"/v2/{name}/manifests/{{tag}}", self.put_manifest)
        return app


@asynccontextmanager
async def running_registry(username: str, password: str) -> AsyncIterator[FakeRegistry]:
    registry = FakeRegistry(username, password)
    runner = web.AppRunner(registry.app(), access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    registry.port = runner.addresses[0][1]
    try:
        yield registry
    finally:
        await runner.cleanup()
