"""The volumes this proxy serves, by name, from the config."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Mapping

from bai.common.errors import AlreadyExists, InvalidArgument, NotFound
from bai.storage.config import VolumeConfig
from bai.storage.quota import VFolderId
from bai.storage.volumes.safe_fs import path_usage
from bai.storage.volumes.vfs import VfsVolume


class VolumePool:
    def __init__(self, configs: Mapping[str, VolumeConfig]) -> None:
        self.volumes = {name: VfsVolume(name, conf) for name, conf in sorted(configs.items())}
        # Clone targets being copied now ("<volume>/<vfid>").
        self.cloning: set[str] = set()

    def prepare(self) -> None:
        for volume in self.volumes.values():
            volume.prepare()

    def get(self, name: str) -> VfsVolume:
        if not name:
            raise InvalidArgument.field("volume", "is required")
        volume = self.volumes.get(name)
        if volume is None:
            raise NotFound(f"volume {name} is not served by this proxy")
        return volume

    def clone(
        self, src_volume: str, src: VFolderId, dst_volume: str, dst: VFolderId
    ) -> tuple[int, int]:
        """Copy a folder (symlinks copied as links, never followed) into a new one.

        The copy is made under a hidden name and renamed into place when
        complete, so a failed copy leaves nothing and a new call starts over.
        """
        source_vol, target_vol = self.get(src_volume), self.get(dst_volume)
        source = source_vol.existing_folder(src)
        key = f"{dst_volume}/{dst.vfid}"
        target = target_vol.folder_dir(dst)
        if key in self.cloning or target.exists():
            raise AlreadyExists(f"folder {dst.vfid} already exists on {dst_volume}")
        self.cloning.add(key)
        try:
            files, size = path_usage(source)
            target_vol.check_write(dst.scope, size)
            target.parent.mkdir(exist_ok=True)
            partial = target.parent / f".clone-{dst.folder}-{uuid.uuid4().hex[:8]}"
            try:
                shutil.copytree(source, partial, symlinks=True)
                partial.rename(target)
            finally:
                if partial.exists():
                    shutil.rmtree(partial, ignore_errors=True)
            return size, files
        finally:
            self.cloning.discard(key)
