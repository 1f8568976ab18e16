"""PostgreSQL: initdb under the state dir, trust auth on 127.0.0.1, role and database ``bai``.

As root, PostgreSQL runs as the ``postgres`` system user (created when missing); the
data dir is chowned to it and every directory above it must be traversable by it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
from pathlib import Path

from bai.stack.config import PG_DATABASE, PG_PASSWORD, PG_USER, StackConfig
from bai.stack.errors import StackError
from bai.stack.health import command_ok
from bai.stack.install import pg_binary
from bai.stack.process import run_as
from bai.stack.spec import ProcessSpec

NAME = "postgres"
SYSTEM_USER = "postgres"
SUPERUSER = "postgres"

_TEST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


def _ensure_system_user() -> None:
    try:
        pwd.getpwnam(SYSTEM_USER)
        return
    except KeyError:
        pass
    done = subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home",
         "--home-dir", "/var/lib/postgresql", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise StackError(f"cannot create system user {SYSTEM_USER}: {done.stderr.strip()}")


def _check_traversable(path: Path, uid: int, gid: int) -> None:
    for parent in path.parents:
        st = parent.stat()
        if st.st_uid == uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid == gid:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            raise StackError(
                f"user {SYSTEM_USER} cannot reach {path}: {parent} is not traversable "
                f"(chmod o+x {parent}, or choose another state dir)"
            )


def _run(argv: list[str], user: str | None, what: str) -> str:
    try:
        done = subprocess.run(
            argv, user=user, group=user, extra_groups=[] if user else None,
            stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
        )  # fmt: skip
    except OSError as exc:
        raise StackError(f"{what}: {exc}") from exc
    if done.returncode != 0:
        raise StackError(f"{what} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def prepare(config: StackConfig) -> None:
    base = config.component_dir(NAME)
    data = base / "data"
    user = run_as(SYSTEM_USER)
    base.mkdir(parents=True, exist_ok=True)
    if user is not None:
        _ensure_system_user()
        entry = pwd.getpwnam(user)
        os.chown(base, entry.pw_uid, entry.pw_gid)
        _check_traversable(base, entry.pw_uid, entry.pw_gid)
    if (data / "PG_VERSION").exists():
        return
    if data.exists():
        shutil.rmtree(data)  # a half-finished initdb
    argv = [
        str(pg_binary("initdb")), "-D", str(data), "-U", SUPERUSER, "--auth=trust",
        "-E", "UTF8", "--locale=C",
    ]  # fmt: skip
    if config.ephemeral:
        argv.append("--no-sync")
    _run(argv, user, "initdb")


def _psql(config: StackConfig, sql: str, *, database: str = "postgres") -> str:
    argv = [
        str(pg_binary("psql")), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
        "-h", config.host, "-p", str(config.port(NAME)), "-U", SUPERUSER, "-d", database,
        "-c", sql,
    ]  # fmt: skip
    return _run(argv, None, f"psql {sql!r}")


def bootstrap(config: StackConfig) -> None:
    """Create role ``bai`` (password ``bai``) and database ``bai``; idempotent."""
    _psql(
        config,
        "DO $$ BEGIN "
        f"IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PG_USER}') THEN "
        f"CREATE ROLE {PG_USER} LOGIN CREATEDB PASSWORD '{PG_PASSWORD}'; "
        "END IF; END $$;",
    )
    exists = _psql(config, f"SELECT 1 FROM pg_database WHERE datname = '{PG_DATABASE}'")
    if exists.strip() != "1":
        _psql(config, f"CREATE DATABASE {PG_DATABASE} OWNER {PG_USER}")


def spec(config: StackConfig) -> ProcessSpec:
    port = config.port(NAME)
    data = config.component_dir(NAME) / "data"
    settings = [
        f"listen_addresses={config.host}",
        f"port={port}",
        "unix_socket_directories=",
        "max_connections=200",
    ]
    if config.ephemeral:
        settings.extend(_TEST_SETTINGS)
    argv = [str(pg_binary("postgres")), "-D", str(data)]
    for setting in settings:
        argv += ["-c", setting]
    ready = [str(pg_binary("pg_isready")), "-q", "-t", "1", "-h", config.host, "-p", str(port)]
    return ProcessSpec(
        name=NAME,
        argv=argv,
        port=port,
        health=command_ok(ready),
        user=SYSTEM_USER,
        cwd=config.component_dir(NAME),
        prepare=lambda: prepare(config),
        after_start=lambda: bootstrap(config),
        # Fast shutdown: SIGTERM ("smart") would wait for every client to disconnect.
        stop_signal=signal.SIGINT,
    )
