"""``bai admin``: administration commands, one module per resource."""

from __future__ import annotations

import argparse
from typing import Any

from bai.cli.admin import agent, audit, domain, keypair, policy, project, scaling_group, user


def register(sub: Any, name: str, help_text: str, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        name,
        help=help_text,
        description=(
            "Administer the platform. Most writes need a superadmin or the domain's admin; "
            "monitors read. Resource names follow upstream Backend.AI "
            "(`group` = project, `sgroup` = scaling group)."
        ),
    )
    groups = p.add_subparsers(dest="admin_command", metavar="RESOURCE", required=True)
    for module in (domain, project, user, keypair, policy, scaling_group, agent, audit):
        module.register(groups, common)
