"""A real storage proxy process registered with the test manager as host "e2e:local"."""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bai.manager.bootstrap import DEFAULT
from bai.manager.config import StorageProxyConfig
from bai.manager.db.identity import DomainRow
from bai.manager.vfolders.permissions import HOST_PERMISSIONS
from bai.stack.testing import free_ports
from bai.storage.testing import ProxyProcess
from tests.manager.fixtures import ManagerHandle

PROXY = "e2e"
HOST = f"{PROXY}:local"


@asynccontextmanager
async def storage_proxy(manager: ManagerHandle) -> AsyncIterator[ProxyProcess]:
    """The proxy on free ports over a fresh volume; the manager's default host while
    it runs, usable by the default domain."""
    token = secrets.token_urlsafe(16)
    client_port, manager_port = free_ports(2)
    # A short, world-traversable base: agents bind folders from here into kernels.
    base = Path(tempfile.mkdtemp(prefix="bai-e2e-storage-"))
    os.chmod(base, 0o755)
    proxy = ProxyProcess(
        base / "volume",
        base / "proxy.log",
        client_port=client_port,
        manager_port=manager_port,
        jwt_secret=secrets.token_urlsafe(32),
        manager_token=token,
    )
    await asyncio.to_thread(proxy.start)
    storage = manager.ctx.config.storage
    storage.proxies[PROXY] = StorageProxyConfig(
        manager_address=f"127.0.0.1:{manager_port}",
        client_address=f"127.0.0.1:{client_port}",
        secret=token,
    )
    before, storage.default_host = storage.default_host, HOST
    async with manager.ctx.sessions() as db, db.begin():
        domain = await db.get(DomainRow, DEFAULT, with_for_update=True)
        assert domain is not None
        domain.allowed_vfolder_hosts = {
            **domain.allowed_vfolder_hosts,
            HOST: sorted(HOST_PERMISSIONS),
        }
    try:
        yield proxy
    finally:
        storage.proxies.pop(PROXY, None)
        storage.default_host = before
        await asyncio.to_thread(proxy.stop)
