"""Removes abandoned partial uploads (untouched for the staging TTL) now and then."""

from __future__ import annotations

import asyncio
import logging

from bai.storage.transfers.staging import Staging
from bai.storage.volumes.pool import VolumePool

log = logging.getLogger("bai.storage.sweeper")


def sweep_once(pool: VolumePool, max_age_seconds: float) -> int:
    removed = 0
    for volume in pool.volumes.values():
        keys = Staging(volume.staging_dir).sweep(max_age_seconds)
        if keys:
            log.info("abandoned uploads removed", extra={"volume": volume.name, "count": len(keys)})
        removed += len(keys)
    return removed


async def sweep_forever(pool: VolumePool, max_age_seconds: float, interval: float) -> None:
    while True:
        try:
            await asyncio.to_thread(sweep_once, pool, max_age_seconds)
        except OSError:
            log.exception("sweeping partial uploads failed")
        await asyncio.sleep(interval)
