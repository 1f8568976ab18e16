"""Reading invitations: the ones addressed to or sent by the caller."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bai.api.manager.v1 import vfolder_pb2 as pb
from bai.common.errors import FieldViolation, InvalidArgument, NotFound
from bai.manager.api.convert import timestamp
from bai.manager.auth.principal import Principal
from bai.manager.db.identity import UserRow
from bai.manager.db.storage import VFolderInvitationRow, VFolderRow
from bai.manager.paging import decode_token, encode_token
from bai.manager.vfolders import names

_Inviter = aliased(UserRow)
_Invitee = aliased(UserRow)


def _joined() -> Select[VFolderInvitationRow, str, str, str]:
    return (
        select(VFolderInvitationRow, VFolderRow.name, _Inviter.email, _Invitee.email)
        .join(VFolderRow, VFolderRow.id == VFolderInvitationRow.vfolder_id)
        .join(_Inviter, _Inviter.id == VFolderInvitationRow.inviter_id)
        .join(_Invitee, _Invitee.id == VFolderInvitationRow.invitee_id)
    )


def _to_proto(
    row: VFolderInvitationRow, name: str, inviter: str, invitee: str
) -> pb.VFolderInvitation:
    return pb.VFolderInvitation(
        id=str(row.id),
        vfolder_id=str(row.vfolder_id),
        vfolder_name=name,
        inviter_email=inviter,
        invitee_email=invitee,
        permission=names.PERMISSION.get(row.permission, names.NO_PERMISSION),
        status=names.INVITATION_STATE.get(row.state, pb.FOLDER_INVITATION_STATUS_UNSPECIFIED),
        created_at=timestamp(row.created_at),
        modified_at=timestamp(row.modified_at),
    )


async def invitation_protos(
    db: AsyncSession, ids: Sequence[uuid.UUID]
) -> list[pb.VFolderInvitation]:
    """The invitations with these ids, in the same order."""
    await db.flush()
    rows = await db.execute(_joined().where(VFolderInvitationRow.id.in_(list(ids))))
    by_id = {row.id: _to_proto(row, name, a, b) for row, name, a, b in rows}
    return [by_id[i] for i in ids]


async def load_addressed(
    db: AsyncSession, p: Principal, invitation_id: uuid.UUID, *, as_invitee: bool
) -> tuple[VFolderInvitationRow, VFolderRow]:
    """An invitation the caller received (or sent), locked; NOT_FOUND otherwise."""
    party = VFolderInvitationRow.invitee_id if as_invitee else VFolderInvitationRow.inviter_id
    found = (
        await db.execute(
            select(VFolderInvitationRow, VFolderRow)
            .join(VFolderRow, VFolderRow.id == VFolderInvitationRow.vfolder_id)
            .where(VFolderInvitationRow.id == invitation_id, party == p.user_id)
            .with_for_update(of=VFolderInvitationRow)
        )
    ).first()
    if found is None:
        raise NotFound("invitation not found")
    return found[0], found[1]


async def list_invitations(
    db: AsyncSession,
    p: Principal,
    *,
    sent: bool,
    states: tuple[str, ...],
    page_size: int,
    page_token: str,
) -> tuple[list[pb.VFolderInvitation], str]:
    party = VFolderInvitationRow.inviter_id if sent else VFolderInvitationRow.invitee_id
    query = _joined().where(party == p.user_id, VFolderInvitationRow.state.in_(states))
    key = (str(p.user_id), sent, states)
    after = decode_token(page_token, key)
    if after is not None:
        created, last_id = _page_key(after)
        query = query.where(
            tuple_(VFolderInvitationRow.created_at, VFolderInvitationRow.id)
            < tuple_(created, last_id)
        )
    query = query.order_by(
        VFolderInvitationRow.created_at.desc(), VFolderInvitationRow.id.desc()
    ).limit(page_size + 1)
    rows = (await db.execute(query)).all()
    more = len(rows) > page_size
    rows = rows[:page_size]
    token = ""
    if more:
        last = rows[-1][0]
        token = encode_token(f"{last.created_at.isoformat()}|{last.id}", key)
    return [_to_proto(row, name, a, b) for row, name, a, b in rows], token


def _page_key(after: str) -> tuple[datetime, uuid.UUID]:
    created, _, raw_id = after.partition("|")
    try:
        return datetime.fromisoformat(created), uuid.UUID(raw_id)
    except ValueError as exc:
        raise InvalidArgument(
            [FieldViolation("page_token", "is not a token from this list")],
            reason="INVALID_PAGE_TOKEN",
        ) from exc
