"""``bai config profiles|show|use|set|unset``: connection profiles."""

from __future__ import annotations

import argparse
import json
from typing import Any

from bai.cli.config import PROFILE_KEYS, config_dir, mask
from bai.cli.context import Context, UsageError


def register(sub: Any, name: str, help_text: str, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        name,
        help=help_text,
        description=(
            "Profiles keep an endpoint and credentials (access_key + secret_key, or a token "
            f"from `bai login`). They live in {config_dir() / 'config.toml'} "
            "(BAI_CONFIG_DIR moves it)."
        ),
    )
    cmds = p.add_subparsers(dest="config_command", metavar="COMMAND", required=True)
    ls = cmds.add_parser(
        "profiles", aliases=["ls"], parents=[common], help="list profiles; * marks the current one"
    )
    ls.set_defaults(func=profiles)
    show = cmds.add_parser("show", parents=[common], help="show a profile (secrets masked)")
    show.add_argument("name", nargs="?", help="profile (default: the current one)")
    show.set_defaults(func=show_profile)
    use = cmds.add_parser("use", parents=[common], help="make a profile the current one")
    use.add_argument("name", help="profile name (created if new)")
    use.set_defaults(func=use_profile)
    keys = ", ".join(PROFILE_KEYS)
    set_ = cmds.add_parser(
        "set", parents=[common], help="set a value in a profile", description=f"Set one of: {keys}."
    )
    set_.add_argument("key", choices=PROFILE_KEYS, metavar="KEY", help=keys)
    set_.add_argument("value")
    set_.set_defaults(func=set_value)
    unset = cmds.add_parser("unset", parents=[common], help="remove a value from a profile")
    unset.add_argument("key", choices=PROFILE_KEYS, metavar="KEY", help=keys)
    unset.set_defaults(func=unset_value)


def profiles(args: argparse.Namespace, ctx: Context) -> int:
    config = ctx.config
    names = sorted(set(config.profiles) | {config.current})
    if ctx.json:
        data = [
            {
                "name": n,
                "current": n == config.current,
                "endpoint": config.profiles.get(n, {}).get("endpoint", ""),
            }
            for n in names
        ]
        ctx.print(json.dumps(data, indent=2))
        return 0
    from bai.cli.output import table

    rows = []
    for n in names:
        values = config.profiles.get(n, {})
        auth = "token" if values.get("token") else "keypair" if values.get("access_key") else "-"
        rows.append(["*" if n == config.current else "", n, values.get("endpoint", "-"), auth])
    ctx.print(table(["", "NAME", "ENDPOINT", "AUTH"], rows))
    return 0


def show_profile(args: argparse.Namespace, ctx: Context) -> int:
    name = args.name or ctx.profile_name
    if name not in ctx.config.profiles:
        raise UsageError(f"no profile {name!r}")
    values = {k: mask(k, v) for k, v in ctx.config.profiles[name].items()}
    if ctx.json:
        ctx.print(json.dumps({"name": name, **values}, indent=2))
    else:
        ctx.print(f"profile {name}" + (" (current)" if name == ctx.config.current else ""))
        for key in PROFILE_KEYS:
            if key in values:
                ctx.print(f"  {key} = {values[key]}")
    return 0


def use_profile(args: argparse.Namespace, ctx: Context) -> int:
    ctx.config.current = args.name
    ctx.config.profile(args.name)
    ctx.config.save()
    if not ctx.json:
        ctx.print(f"current profile: {args.name}")
    return 0


def set_value(args: argparse.Namespace, ctx: Context) -> int:
    ctx.config.set(ctx.profile_name, args.key, args.value)
    ctx.config.save()
    if not ctx.json:
        ctx.print(f"{ctx.profile_name}: {args.key} = {mask(args.key, args.value)}")
    return 0


def unset_value(args: argparse.Namespace, ctx: Context) -> int:
    removed = ctx.config.unset(ctx.profile_name, args.key)
    ctx.config.save()
    if not ctx.json:
        state = "removed" if removed else "was not set"
        ctx.print(f"{ctx.profile_name}: {args.key} {state}")
    return 0
