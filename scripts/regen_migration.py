#!/usr/bin/env python3
"""Write a new Alembic revision by diffing the models against a migrated scratch DB.

    scripts/regen_migration.py "add foo to bar"     # new revision after head
    scripts/regen_migration.py --initial            # rewrite 0001 (before any release)

Uses a throwaway PostgreSQL from bai.stack, so nothing else needs to run.
"""

from __future__ import annotations

import sys

from alembic import command

from bai.manager.db.migrations import HERE, alembic_config, upgrade
from bai.stack.testing import ThrowawayStack


def main(argv: list[str]) -> int:
    initial = argv[:1] == ["--initial"]
    message = "initial schema" if initial else " ".join(argv) or "schema change"
    with ThrowawayStack(["postgres"]) as stack:
        cfg = alembic_config(stack.pg_dsn)
        if initial:
            for old in (HERE / "versions").glob("0001_*.py"):
                old.unlink()
            command.revision(cfg, message=message, autogenerate=True, rev_id="0001")
        else:
            upgrade(stack.pg_dsn)
            heads = sorted(
                p.name[:4] for p in (HERE / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")
            )
            rev_id = f"{int(heads[-1]) + 1:04d}"
            command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
