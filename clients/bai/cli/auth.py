"""``bai login``, ``bai logout`` and ``bai whoami``."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from bai.cli.context import Context, UsageError


def register(sub: Any, name: str, help_text: str, common: argparse.ArgumentParser) -> None:
    if name == "login":
        p = sub.add_parser(
            "login",
            help=help_text,
            parents=[common],
            description=(
                "Exchange a username (or email) and password for a bearer token and store "
                "it, with the endpoint, in the profile. The password is read from "
                "--password, else BAI_PASSWORD, else prompted for."
            ),
        )
        p.add_argument("username", nargs="?", help="username or email (prompted if left out)")
        p.add_argument("--password", help="password (prefer BAI_PASSWORD or the prompt)")
        p.add_argument(
            "--ttl",
            type=int,
            default=0,
            metavar="SECONDS",
            help="token lifetime (default: the server's, 3600)",
        )
        p.set_defaults(func=login)
    elif name == "logout":
        p = sub.add_parser(
            "logout",
            help=help_text,
            parents=[common],
            description="Revoke the profile's bearer token on the server and remove it from "
            "the profile. Keypair settings are kept.",
        )
        p.set_defaults(func=logout)
    else:
        p = sub.add_parser(
            "whoami",
            help=help_text,
            parents=[common],
            description="Show the user, role, domain and projects of the current credentials.",
        )
        p.set_defaults(func=whoami)


def _username(args: argparse.Namespace) -> str:
    if args.username:
        return str(args.username)
    if not sys.stdin.isatty():
        raise UsageError("give the username: bai login USERNAME")
    return input("Username: ").strip()


def _password(args: argparse.Namespace) -> str:
    if args.password:
        return str(args.password)
    if os.environ.get("BAI_PASSWORD"):
        return os.environ["BAI_PASSWORD"]
    if not sys.stdin.isatty():
        raise UsageError("no password: use --password, BAI_PASSWORD or a terminal")
    return getpass.getpass("Password: ")


def login(args: argparse.Namespace, ctx: Context) -> int:
    from bai.cli.output import print_object

    username = _username(args)
    password = _password(args)
    client = ctx.client(authenticated=False)
    client.credentials = None
    response = client.auth.login(username=username, password=password, ttl_seconds=args.ttl)
    config = ctx.config
    name = ctx.profile_name
    config.set(name, "endpoint", ctx.endpoint)
    config.set(name, "token", response.token)
    config.set(name, "username", response.identity.username or username)
    config.save()
    if ctx.json:
        print_object(ctx, response.identity)
        return 0
    from bai.api.manager.v1 import auth_pb2
    from bai.client._requests import short_enum_name

    role_name = short_enum_name(auth_pb2.UserRole.DESCRIPTOR, response.identity.role)
    expires = "the server's default expiry"
    if response.HasField("expires_at"):
        expires = response.expires_at.ToDatetime().isoformat(timespec="seconds") + "Z"
    ctx.print(
        f"logged in as {response.identity.username} ({role_name}) on {ctx.endpoint}; "
        f"token saved in profile {name!r}, valid until {expires}"
    )
    return 0


def logout(args: argparse.Namespace, ctx: Context) -> int:
    from bai.client import TokenCredentials, errors

    token = ctx.config.profiles.get(ctx.profile_name, {}).get("token")
    if not token:
        ctx.note(f"profile {ctx.profile_name!r} has no token; nothing to do")
        return 0
    client = ctx.client(authenticated=False)
    client.credentials = TokenCredentials(token)
    try:
        client.auth.logout()
    except errors.Unauthenticated:
        pass  # already expired or revoked: forgetting it is all that is left
    finally:
        ctx.config.unset(ctx.profile_name, "token")
        ctx.config.save()
    if not ctx.json:
        ctx.print(f"logged out; token removed from profile {ctx.profile_name!r}")
    else:
        ctx.print("{}")
    return 0


def whoami(args: argparse.Namespace, ctx: Context) -> int:
    from bai.cli.output import print_object

    print_object(ctx, ctx.client().auth.who_am_i())
    return 0
