"""``bai``: the command line of the bai platform.

Client commands (login, whoami, config, admin, session, run, ...) talk to the API through
bai.client; server commands (manager, stack, agent, storage, coordinator) hand
their arguments to that component's own CLI. Command modules are imported only
when their command runs, so ``bai --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from bai.cli.context import Context, common_options

# command -> (module with register(), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "login": ("bai.cli.auth", "log in with username and password; keep the token in the profile"),
    "logout": ("bai.cli.auth", "revoke the profile's token and forget it"),
    "whoami": ("bai.cli.auth", "show the user behind the current credentials"),
    "config": ("bai.cli.config_cmd", "list, select and edit connection profiles"),
    "admin": (
        "bai.cli.admin",
        "manage domains, projects, users, keypairs, policies, scaling groups; read audit logs",
    ),
    "session": (
        "bai.cli.session_cmd",
        "create, list, inspect and destroy sessions; exec code, follow logs, events, stats",
    ),
    "run": ("bai.cli.run_cmd", "run code in a new session, then destroy it"),
    "vfolder": ("bai.cli.vfolder_cmd", "virtual folders: create, share, upload and download files"),
    "app": ("bai.cli.app_cmd", "open an app (jupyter, terminal, ...) of a session in a browser"),
    "apps": ("bai.cli.app_cmd", "list a session's apps and which of them run"),
    "image": ("bai.cli.image_cmd", "list and inspect images; alias, forget, rescan and pull them"),
}
# server command -> (module whose main(argv) runs it, one-line help)
SERVERS: dict[str, tuple[str, str]] = {
    "manager": ("bai.manager.main", "run the manager: start, migrate, bootstrap, ..."),
    "stack": ("bai.stack.cli", "run the whole platform and its infrastructure locally"),
    "agent": ("bai.agent.main", "run an agent (compute node)"),
    "storage": ("bai.storage.main", "run the storage proxy"),
    "coordinator": ("bai.coordinator.main", "run the app-proxy coordinator"),
}
_VALUE_OPTIONS = {"--profile", "--endpoint", "--timeout"}

EPILOG = """\
environment:
  BAI_ENDPOINT, BAI_ACCESS_KEY + BAI_SECRET_KEY, BAI_TOKEN, BAI_PROFILE override the
  profile; BAI_CONFIG_DIR moves the config directory (default ~/.config/bai);
  BAI_DEBUG=1 shows tracebacks of unexpected errors.

exit codes:
  0 success; 1 other error; 2 usage or invalid argument; 3 authentication;
  4 not found or permission denied; 5 conflict (already exists, in use, wrong state);
  6 server unavailable or timed out; 130 interrupted.
  `bai run` and `bai session exec` exit with the exit code of the code they ran.
"""


def _command_word(argv: Sequence[str]) -> tuple[str | None, int]:
    skip = False
    for i, word in enumerate(argv):
        if skip:
            skip = False
        elif word in _VALUE_OPTIONS:
            skip = True
        elif not word.startswith("-"):
            return word, i
    return None, -1


def build_parser(selected: str | None) -> argparse.ArgumentParser:
    common = common_options()
    parser = argparse.ArgumentParser(
        prog="bai",
        description="Command line for the bai platform (a gRPC re-creation of Backend.AI).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, (module, help_text) in COMMANDS.items():
        if name == selected:
            importlib.import_module(module).register(sub, name, help_text, common)
        else:
            sub.add_parser(name, help=help_text)
    for name, (_, help_text) in SERVERS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def run_server(name: str, argv: list[str]) -> int:
    module_name = SERVERS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(
                f"error: the {name} component is not available here ({module_name} not found)",
                file=sys.stderr,
            )
        else:
            print(f"error: cannot load the {name} component: {exc}", file=sys.stderr)
        return 1
    try:
        if name == "stack":
            return int(module.main(argv, prog="bai stack") or 0)
        return int(module.main(argv) or 0)
    except SystemExit as exc:  # argparse in the component (--help, usage errors)
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``bai`` with ``argv`` (default: sys.argv[1:]); returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    command, index = _command_word(args_list)
    if command in SERVERS and index == 0:
        return run_server(command, args_list[1:])
    parser = build_parser(command)
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    if getattr(args, "func", None) is None:
        if command in SERVERS:
            print(f"error: put `{command}` first: bai {command} ...", file=sys.stderr)
        else:
            parser.print_help(sys.stderr)
        return 2
    ctx = Context(args)
    try:
        return int(args.func(args, ctx))
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("BAI_DEBUG"):
            raise
        from bai.cli.errors import describe

        message, code = describe(exc)
        print(f"error: {message}", file=sys.stderr)
        return code
    finally:
        ctx.close()


if __name__ == "__main__":
    raise SystemExit(main())
