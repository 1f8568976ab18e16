"""What a transfer token lets its bearer touch: the one check every transfer
endpoint (FileService over gRPC, the plain-HTTP routes) runs first."""

from __future__ import annotations

from bai.storage import tokens
from bai.storage.context import StorageContext
from bai.storage.paths import Parts
from bai.storage.quota import VFolderId
from bai.storage.volumes.vfs import VfsVolume

READ_OPS: tuple[tokens.Op, ...] = ("download", "archive-download")


def authorize(
    ctx: StorageContext, token: str, path: str, ops: tuple[tokens.Op, ...]
) -> tuple[tokens.TransferClaims, VfsVolume, VFolderId, Parts]:
    """The token's claims, volume, folder and the folder-relative parts of `path` (under
    the token's path); refuses a bad or expired token, another operation, or a path
    that leaves the token's."""
    claims = tokens.verify(ctx.jwt_secret, token)
    tokens.check_op(claims, ops)
    parts = tokens.scoped_path(claims, path)
    return claims, ctx.pool.get(claims.volume), VFolderId.parse(claims.vfid), parts
