"""``bai app SESSION APP`` and ``bai apps SESSION``: open a session's apps in a browser."""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import urlencode

from bai.api.common.v1 import session_pb2 as common_session_pb2
from bai.api.manager.v1 import session_pb2
from bai.cli.admin._common import leaf
from bai.cli.context import Context
from bai.cli.fields import key_value_map
from bai.cli.output import print_done, table, to_dict
from bai.cli.session_cmd import session_id


def browser_url(app: session_pb2.SessionApp) -> str:
    """The URL to open once: with the one-time token the proxy turns into a cookie."""
    if not app.token:
        return app.url
    return f"{app.url}{'&' if '?' in app.url else '?'}{urlencode({'token': app.token})}"


def app(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    sid = session_id(client, args.session)
    if args.stop:
        reply = client.sessions.shutdown_service(session_id=sid, service=args.app)
        print_done(ctx, f"stopped {args.app}", reply)
        return 0
    started = client.sessions.start_service(
        session_id=sid,
        service=args.app,
        port=args.port,
        envs=key_value_map(args.env, "--env"),
        arguments=key_value_map(args.arg, "--arg"),
        open_to_public=args.public,
        allowed_client_ips=args.allow_ip,
    ).app
    if ctx.json:
        ctx.print(json.dumps(to_dict(started) | {"browser_url": browser_url(started)}, indent=2))
        return 0
    ctx.print(browser_url(started))
    if started.token:
        expires = started.token_expires_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S UTC")
        ctx.note(
            f"open it once in a browser before {expires} (the token then becomes a cookie), "
            f"or send 'Authorization: Bearer {started.token}'"
        )
    return 0


def apps(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    found = client.sessions.list_services(session_id=session_id(client, args.session)).apps
    if ctx.json:
        ctx.print(json.dumps([to_dict(a) for a in found], indent=2))
        return 0
    rows = [
        [
            a.service_port.name,
            common_session_pb2.AppProtocol.Name(a.service_port.protocol)
            .removeprefix("APP_PROTOCOL_")
            .lower(),
            ",".join(str(p) for p in a.service_port.container_ports),
            "yes" if a.is_running else "no",
            a.url,
        ]
        for a in found
    ]
    ctx.print(table(["APP", "PROTOCOL", "PORTS", "RUNNING", "URL"], rows))
    return 0


def register(sub: Any, name: str, help_text: str, common: argparse.ArgumentParser) -> None:
    if name == "apps":
        p = leaf(sub, name, help_text, apps, common)
        p.add_argument("session", metavar="ID|NAME", help="session id, or name of a live session")
        return
    p = leaf(
        sub,
        name,
        help_text,
        app,
        common,
        description=(
            "Start APP (a service port of the session's image, e.g. jupyter or ttyd; see "
            "`bai apps`) inside the session and print the app-proxy URL to open in a "
            "browser, with a one-time token the proxy exchanges for a cookie. Starting an "
            "app that runs already prints its URL again with a fresh token. --stop closes "
            "the app and removes its route."
        ),
    )
    p.add_argument("session", metavar="ID|NAME", help="session id, or name of a live session")
    p.add_argument("app", metavar="APP", help="service port name, e.g. jupyter, ttyd")
    p.add_argument("--port", type=int, default=0, help="container port of a multi-port app")
    p.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="environment for the app"
    )
    p.add_argument(
        "--arg", action="append", default=[], metavar="KEY=VALUE", help="argument for the app"
    )
    p.add_argument(
        "--public", action="store_true", help="reachable without a token by anyone with the URL"
    )
    p.add_argument(
        "--allow-ip",
        action="append",
        default=[],
        metavar="CIDR",
        help="only these client addresses may connect (repeatable)",
    )
    p.add_argument("--stop", action="store_true", help="stop the app and remove its route")
