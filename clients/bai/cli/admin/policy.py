"""``bai admin policy keypair|user|project ls|info|create|update|rm``.

Upstream: keypair-resource-policy, user-resource-policy, project-resource-policy;
those names work as aliases of ``bai admin policy keypair`` and so on.
"""

from __future__ import annotations

import argparse
from typing import Any, TypeVar

from google.protobuf.message import Message

from bai.api.manager.v1 import resource_policy_pb2 as rp
from bai.cli.admin._common import Crud, register_crud, subcommands
from bai.cli.context import Context
from bai.cli.fields import Opt
from bai.client._generated import ResourcePolicyService

KEYPAIR_OPTS = [
    Opt(
        "--slot",
        "total_resource_slots",
        "slots",
        "limit for all sessions of a keypair, e.g. cpu=8 mem=32g (repeatable)",
    ),
    Opt(
        "--default-for-unspecified",
        "default_for_unspecified",
        "enum",
        "what a slot missing from --slot means",
        enum=rp.DefaultForUnspecified.DESCRIPTOR,
    ),
    Opt("--max-session-lifetime", "max_session_lifetime", "seconds", "0: unlimited"),
    Opt("--max-concurrent-sessions", "max_concurrent_sessions", "int", "0: unlimited"),
    Opt("--max-concurrent-sftp-sessions", "max_concurrent_sftp_sessions", "int", "0: unlimited"),
    Opt("--max-pending-session-count", "max_pending_session_count", "int", "0: unlimited"),
    Opt(
        "--max-pending-slot",
        "max_pending_session_resource_slots",
        "slots",
        "limit for all pending sessions of a keypair (repeatable)",
    ),
    Opt("--max-priority", "max_priority", "int", "highest session priority, 0-100 (default 10)"),
    Opt("--max-containers-per-session", "max_containers_per_session", "int", "0: unlimited"),
    Opt("--idle-timeout", "idle_timeout", "seconds", "0: no idle termination"),
    Opt(
        "--vfolder-host",
        "allowed_vfolder_hosts",
        "hosts",
        "storage host and its permissions, e.g. local=create-vfolder,mount-in-session",
    ),
]
USER_OPTS = [
    Opt("--max-vfolder-count", "max_vfolder_count", "int", "0: unlimited"),
    Opt("--max-quota-scope-size", "max_quota_scope_size", "int", "bytes; 0: unlimited"),
    Opt(
        "--max-session-count-per-model-session",
        "max_session_count_per_model_session",
        "int",
        "0: unlimited",
    ),
    Opt("--max-customized-image-count", "max_customized_image_count", "int", "0: unlimited"),
    Opt("--max-concurrent-logins", "max_concurrent_logins", "int", "0: unlimited"),
]
PROJECT_OPTS = [
    Opt("--max-vfolder-count", "max_vfolder_count", "int", "0: unlimited"),
    Opt("--max-quota-scope-size", "max_quota_scope_size", "int", "bytes; 0: unlimited"),
    Opt("--max-network-count", "max_network_count", "int", "0: unlimited"),
]

KEYPAIR_COLUMNS = [
    ("NAME", "name"),
    ("TOTAL SLOTS", "total_resource_slots"),
    ("SESSIONS", "max_concurrent_sessions"),
    ("PENDING", "max_pending_session_count"),
    ("PRIORITY", "max_priority"),
    ("IDLE TIMEOUT", "idle_timeout"),
    ("LIFETIME", "max_session_lifetime"),
]
USER_COLUMNS = [
    ("NAME", "name"),
    ("VFOLDERS", "max_vfolder_count"),
    ("QUOTA", "max_quota_scope_size"),
    ("LOGINS", "max_concurrent_logins"),
    ("IMAGES", "max_customized_image_count"),
]
PROJECT_COLUMNS = [
    ("NAME", "name"),
    ("VFOLDERS", "max_vfolder_count"),
    ("QUOTA", "max_quota_scope_size"),
    ("NETWORKS", "max_network_count"),
]


P = TypeVar("P", rp.KeypairResourcePolicy, rp.UserResourcePolicy, rp.ProjectResourcePolicy)


def _named(message: Message, args: argparse.Namespace, cls: type[P]) -> P:
    assert isinstance(message, cls)
    message.name = args.key
    return message


def _policies(ctx: Context) -> ResourcePolicyService:
    return ctx.client().resource_policies


KEYPAIR = Crud(
    noun="keypair resource policy",
    key="NAME",
    columns=KEYPAIR_COLUMNS,
    opts=KEYPAIR_OPTS,
    message=rp.KeypairResourcePolicy,
    list_items=lambda c, a: _policies(c).iter_keypair_resource_policies(page_size=a.page_size),
    get=lambda c, a: _policies(c).get_keypair_resource_policy(name=a.key).policy,
    create=lambda c, a, m: (
        _policies(c)
        .create_keypair_resource_policy(policy=_named(m, a, rp.KeypairResourcePolicy))
        .policy
    ),
    update=lambda c, a, m, paths: (
        _policies(c)
        .update_keypair_resource_policy(
            policy=_named(m, a, rp.KeypairResourcePolicy), update_mask=paths
        )
        .policy
    ),
    delete=lambda c, a: _policies(c).delete_keypair_resource_policy(name=a.key),
)
USER = Crud(
    noun="user resource policy",
    key="NAME",
    columns=USER_COLUMNS,
    opts=USER_OPTS,
    message=rp.UserResourcePolicy,
    list_items=lambda c, a: _policies(c).iter_user_resource_policies(page_size=a.page_size),
    get=lambda c, a: _policies(c).get_user_resource_policy(name=a.key).policy,
    create=lambda c, a, m: (
        _policies(c).create_user_resource_policy(policy=_named(m, a, rp.UserResourcePolicy)).policy
    ),
    update=lambda c, a, m, paths: (
        _policies(c)
        .update_user_resource_policy(policy=_named(m, a, rp.UserResourcePolicy), update_mask=paths)
        .policy
    ),
    delete=lambda c, a: _policies(c).delete_user_resource_policy(name=a.key),
)
PROJECT = Crud(
    noun="project resource policy",
    key="NAME",
    columns=PROJECT_COLUMNS,
    opts=PROJECT_OPTS,
    message=rp.ProjectResourcePolicy,
    list_items=lambda c, a: _policies(c).iter_project_resource_policies(page_size=a.page_size),
    get=lambda c, a: _policies(c).get_project_resource_policy(name=a.key).policy,
    create=lambda c, a, m: (
        _policies(c)
        .create_project_resource_policy(policy=_named(m, a, rp.ProjectResourcePolicy))
        .policy
    ),
    update=lambda c, a, m, paths: (
        _policies(c)
        .update_project_resource_policy(
            policy=_named(m, a, rp.ProjectResourcePolicy), update_mask=paths
        )
        .policy
    ),
    delete=lambda c, a: _policies(c).delete_project_resource_policy(name=a.key),
)
KINDS = {"keypair": KEYPAIR, "user": USER, "project": PROJECT}
HELP = {
    "keypair": "limits per keypair: slots, concurrent sessions, lifetime, idle timeout",
    "user": "limits per user: vfolders, quota, logins, customized images",
    "project": "limits per project: vfolders, quota, networks",
}


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    kinds = subcommands(
        sub,
        "policy",
        "resource policies of keypairs, users and projects",
        aliases=["resource-policy"],
    )
    for kind, crud in KINDS.items():
        cmds = subcommands(kinds, kind, HELP[kind])
        register_crud(cmds, common, crud)
    for kind, crud in KINDS.items():  # upstream's flat names
        cmds = subcommands(sub, f"{kind}-resource-policy", f"same as: policy {kind}")
        register_crud(cmds, common, crud)
