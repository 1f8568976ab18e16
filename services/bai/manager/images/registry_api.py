"""A read-only client of the Docker Registry HTTP API v2: catalog, tags, image configs.

Requests run in threads (urllib): a rescan is an occasional admin operation
and needs no connection pool. Authentication follows the registry's
challenge: basic credentials, or a bearer token fetched from the realm of a
`WWW-Authenticate: Bearer` challenge with those credentials.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from bai.common.errors import FailedPrecondition, Unavailable

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ACCEPT = ", ".join((MANIFEST_V2, MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX))
ARCHITECTURES = {"amd64": "x86_64", "arm64": "aarch64"}
PAGE = 1000
TIMEOUT = 30.0
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class RegistryImage:
    """One image (one architecture) of a repository tag."""

    repository: str
    tag: str
    architecture: str
    # Digest of the image config: what dockerd reports as the image Id.
    digest: str
    size_bytes: int
    labels: dict[str, str] = field(default_factory=dict)


class RegistryAuthFailed(FailedPrecondition):
    def __init__(self, url: str) -> None:
        super().__init__(f"registry {url} refused the credentials", reason="INVALID_STATE")


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(rest))


class RegistryApi:
    def __init__(self, url: str, username: str = "", password: str = "", verify: bool = True):
        self.url = url.rstrip("/")
        self._basic = ""
        if username:
            self._basic = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._context = ssl.create_default_context()
        if not verify:
            self._context.check_hostname = False
            self._context.verify_mode = ssl.CERT_NONE
        self._authorization = ""

    def _open(self, url: str, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        request = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=self._context) as reply:
            return reply.read(), dict(reply.headers.items())

    def _token(self, params: dict[str, str]) -> str:
        realm = params.pop("realm", "")
        if not realm:
            raise RegistryAuthFailed(self.url)
        headers = {"Authorization": f"Basic {self._basic}"} if self._basic else {}
        body, _ = self._open(realm + "?" + urllib.parse.urlencode(params), headers)
        answer = json.loads(body)
        return str(answer.get("token") or answer.get("access_token") or "")

    def _get(self, path: str, accept: str = "application/json") -> tuple[bytes, dict[str, str]]:
        """GET url+path, answering one auth challenge; 404 -> FailedPrecondition."""
        url = self.url + path
        for attempt in range(2):
            headers = {"Accept": accept}
            if self._authorization:
                headers["Authorization"] = self._authorization
            try:
                return self._open(url, headers)
            except urllib.error.HTTPError as exc:
                if exc.code != 401 or attempt:
                    if exc.code == 401:
                        raise RegistryAuthFailed(self.url) from exc
                    raise FailedPrecondition(
                        f"registry {self.url}: GET {path} answered {exc.code}",
                        reason="INVALID_STATE",
                    ) from exc
                scheme, params = _challenge(exc.headers.get("WWW-Authenticate", ""))
                if scheme == "bearer":
                    self._authorization = f"Bearer {self._token(params)}"
                elif self._basic:
                    self._authorization = f"Basic {self._basic}"
                else:
                    raise RegistryAuthFailed(self.url) from exc
            except (urllib.error.URLError, OSError) as exc:
                raise Unavailable(f"registry {self.url} is unreachable: {exc}") from exc
        raise RegistryAuthFailed(self.url)

    def _json(self, path: str, accept: str = "application/json") -> Any:
        body, _ = self._get(path, accept)
        return json.loads(body)

    def _paged(self, path: str, key: str) -> list[str]:
        out: list[str] = []
        last = ""
        while True:
            query = urllib.parse.urlencode({"n": PAGE, **({"last": last} if last else {})})
            page = self._json(f"{path}?{query}").get(key) or []
            out.extend(str(item) for item in page)
            if len(page) < PAGE:
                return out
            last = str(page[-1])

    def repositories_sync(self) -> list[str]:
        return self._paged("/v2/_catalog", "repositories")

    def tags_sync(self, repository: str) -> list[str]:
        return self._paged(f"/v2/{repository}/tags/list", "tags")

    def images_sync(self, repository: str, tag: str) -> list[RegistryImage]:
        """The tag's image per architecture (a manifest list gives several)."""
        body, headers = self._get(f"/v2/{repository}/manifests/{tag}", ACCEPT)
        manifest = json.loads(body)
        kind = manifest.get("mediaType") or headers.get("Content-Type", "")
        if kind in (MANIFEST_LIST, OCI_INDEX) or "manifests" in manifest:
            images = []
            for entry in manifest.get("manifests") or []:
                platform = entry.get("platform") or {}
                if platform.get("os", "linux") != "linux":
                    continue
                inner = self._json(f"/v2/{repository}/manifests/{entry['digest']}", ACCEPT)
                images.append(self._image(repository, tag, inner))
            return images
        return [self._image(repository, tag, manifest)]

    def _image(self, repository: str, tag: str, manifest: dict[str, Any]) -> RegistryImage:
        digest = str(manifest["config"]["digest"])
        config = self._json(f"/v2/{repository}/blobs/{digest}")
        arch = str(config.get("architecture") or "amd64")
        size = sum(int(layer.get("size") or 0) for layer in manifest.get("layers") or [])
        return RegistryImage(
            repository=repository,
            tag=tag,
            architecture=ARCHITECTURES.get(arch, arch),
            digest=digest,
            size_bytes=size,
            labels=dict((config.get("config") or {}).get("Labels") or {}),
        )

    async def repositories(self) -> list[str]:
        return await asyncio.to_thread(self.repositories_sync)

    async def tags(self, repository: str) -> list[str]:
        return await asyncio.to_thread(self.tags_sync, repository)

    async def images(self, repository: str, tag: str) -> list[RegistryImage]:
        return await asyncio.to_thread(self.images_sync, repository, tag)
