"""Abandoned partial uploads are removed after the staging TTL; live ones are kept."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bai.storage.config import VolumeConfig
from bai.storage.quota import QuotaScopeId, VFolderId
from bai.storage.transfers.staging import Staging, UploadHeader, staging_key
from bai.storage.transfers.sweeper import sweep_once
from bai.storage.volumes.pool import VolumePool

DAY = 24 * 3600


def partial(staging: Staging, name: str, age: float) -> str:
    vf = VFolderId(QuotaScopeId("user", "1" * 32), "2" * 32)
    key = staging_key(vf, (name,))
    staging.write_header(key, UploadHeader(vf.vfid, name, 10, "", 0))
    staging.part_path(key).write_bytes(b"12345")
    stamp = time.time() - age
    for path in (staging.part_path(key), staging.header_path(key)):
        os.utime(path, (stamp, stamp))
    return key


def test_sweeper_removes_only_old_unlocked_partials(tmp_path: Path) -> None:
    pool = VolumePool({"v": VolumeConfig(path=str(tmp_path))})
    pool.prepare()
    staging = Staging(pool.get("v").staging_dir)
    old = partial(staging, "old", DAY + 60)
    fresh = partial(staging, "fresh", 60)
    busy = partial(staging, "busy", DAY + 60)
    fd = staging.open_locked(busy)  # an upload still writing it
    try:
        assert sweep_once(pool, DAY) == 1
    finally:
        os.close(fd)
    assert staging.committed(old) is None and not staging.part_path(old).exists()
    assert staging.committed(fresh) == 5
    assert staging.committed(busy) == 5
