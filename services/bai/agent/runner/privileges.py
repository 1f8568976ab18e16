"""Who user code runs as. Stdlib only, python3.9-compatible.

The runner starts as root, runs the bootstrap script, then becomes the kernel's
user for good: kernel.json's `uid`, `gid` and `supplementary_gids`, written by
the agent for images with the uid-match feature. A `uid` of 0 (or none) keeps
the runner as it is; a `gid` of 0 (or none) keeps its group.

The switch cannot be undone (real, effective and saved ids all change), so
neither the runner nor the query code it executes in its own process can become
root again. What the runner needs as root later is opened before the switch
(the listening socket, the batch result file). Interrupts and timeouts need no
privilege: a signal to its own thread, or to process groups of the same user.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# dataclasses and typing stay out of the runner's start (they cost more to import
# than the rest of it); mypy reads any TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class KernelUser:
    __slots__ = ("gid", "supplementary_gids", "uid")

    def __init__(self, uid: int, gid: int, supplementary_gids: tuple[int, ...]) -> None:
        self.uid = uid
        self.gid = gid
        self.supplementary_gids = supplementary_gids


def kernel_user(config: dict[str, Any]) -> KernelUser:
    """The user from kernel.json; ValueError when an id is not a non-negative int."""
    uid = _id(config, "uid")
    gid = _id(config, "gid")
    groups = config.get("supplementary_gids") or []
    if not isinstance(groups, list):
        raise ValueError("kernel.json: supplementary_gids must be a list")
    return KernelUser(uid, gid, tuple(_checked_id("supplementary_gids", g) for g in groups))


def become(user: KernelUser, home: Path) -> None:
    """Switch to `user` for good, with HOME at `home`; a no-op for uid 0."""
    if user.uid == 0:
        return
    if os.geteuid() != 0:
        if os.getuid() != user.uid:
            print(
                f"bai-runner: not root, so user code runs as uid {os.getuid()}, not {user.uid}",
                file=sys.stderr,
            )
        return
    os.setgroups(list(user.supplementary_gids))
    if user.gid:
        os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    os.environ["HOME"] = str(home)


def _id(config: dict[str, Any], key: str) -> int:
    value = config.get(key)
    return 0 if value is None else _checked_id(key, value)


def _checked_id(key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"kernel.json: {key} must be a non-negative integer, not {value!r}")
    return value
