"""Command-line options that set message fields, for create and update commands.

A resource module lists its settable fields once as :class:`Opt` entries;
``add_options`` turns them into argparse options and ``apply_options`` copies
the given ones into a message and returns the update_mask paths. On update,
``--clear FIELD`` resets a field (an empty list, map or default value).

Value syntax:
  slots      --slot cpu=4 --slot mem=8g      (k/m/g/t: binary multiples)
  hosts      --vfolder-host local=create-vfolder,mount-in-session
  map        --driver-opt key=value
  list       --docker-registry cr.example.com (repeat for more, or comma-separate)
  seconds    --idle-timeout 3600
  enum       --role admin
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.message import Message

from bai.cli.context import UsageError
from bai.client._requests import short_enum_name

KINDS = ("str", "int", "bool", "slots", "hosts", "map", "list", "ints", "seconds", "enum")
_SUFFIX = re.compile(r"^(\d+(?:\.\d+)?)([kmgtp])i?b?$", re.IGNORECASE)
_MULTIPLIER = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


@dataclass(frozen=True)
class Opt:
    """One settable field: ``--flag`` -> ``path`` (dotted for nested messages)."""

    flag: str
    path: str
    kind: str
    help: str
    enum: EnumDescriptor | None = None
    mask: str | None = None  # update_mask path; default: the first path component
    create_only: bool = False
    update_only: bool = False

    @property
    def dest(self) -> str:
        return "opt_" + self.path.replace(".", "__")

    @property
    def mask_path(self) -> str:
        return self.mask or self.path.split(".", 1)[0]


def enum_choices(enum: EnumDescriptor) -> list[str]:
    return [short_enum_name(enum, v.number) for v in enum.values if v.number != 0]


def add_options(parser: argparse.ArgumentParser, opts: Sequence[Opt], *, update: bool) -> None:
    group = parser.add_argument_group("fields")
    usable = [o for o in opts if not (o.create_only if update else o.update_only)]
    for o in usable:
        kw: dict[str, Any] = {"dest": o.dest, "help": o.help}
        if o.kind == "bool":
            group.add_argument(o.flag, action=argparse.BooleanOptionalAction, default=None, **kw)
        elif o.kind in ("slots", "hosts", "map", "list", "ints"):
            group.add_argument(o.flag, action="append", metavar=_METAVAR[o.kind], **kw)
        elif o.kind == "enum":
            assert o.enum is not None
            group.add_argument(o.flag, choices=enum_choices(o.enum), **kw)
        elif o.kind in ("int", "seconds"):
            metavar = "SECONDS" if o.kind == "seconds" else "N"
            group.add_argument(o.flag, type=int, metavar=metavar, **kw)
        else:
            group.add_argument(o.flag, metavar="TEXT", **kw)
    if update:
        clearable = sorted({o.mask_path for o in usable if o.kind != "bool"})
        group.add_argument(
            "--clear",
            action="append",
            default=[],
            choices=clearable,
            metavar="FIELD",
            help=f"reset a field to empty/default (one of: {', '.join(clearable)})",
        )


_METAVAR = {
    "slots": "SLOT=VALUE",
    "hosts": "HOST=PERM,...",
    "map": "KEY=VALUE",
    "list": "VALUE",
    "ints": "N,...",
}


def _pairs(values: Sequence[str], flag: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} expects KEY=VALUE, got {value!r}")
        pairs.append((key.strip(), rest.strip()))
    return pairs


def key_value_map(values: Sequence[str], flag: str) -> dict[str, str]:
    """Repeated KEY=VALUE options as a dict (later ones win)."""
    return dict(_pairs(values, flag))


def slot_value(text: str, flag: str = "--slot") -> str:
    """Canonical decimal string; ``8g`` means 8 GiB in bytes."""
    match = _SUFFIX.match(text)
    try:
        if match:
            number = Decimal(match.group(1)) * _MULTIPLIER[match.group(2).lower()]
        else:
            number = Decimal(text)
    except InvalidOperation as exc:
        raise UsageError(f"{flag}: {text!r} is not a number") from exc
    if number < 0:
        raise UsageError(f"{flag}: {text!r} is negative")
    return format(number.normalize(), "f")


def _target(message: Message, path: str) -> tuple[Message, str]:
    *parents, leaf = path.split(".")
    for part in parents:
        message = getattr(message, part)
    return message, leaf


def _set(message: Message, o: Opt, value: Any) -> None:
    msg, name = _target(message, o.path)
    if o.kind == "slots":
        slots = getattr(msg, name).slots
        for values in value:
            for key, text in _pairs(values.split(","), o.flag):
                slots[key] = slot_value(text, o.flag)
    elif o.kind == "hosts":
        hosts = getattr(msg, name)
        for host, perms in _pairs(value, o.flag):
            hosts[host].permissions.extend(p for p in perms.split(",") if p)
    elif o.kind == "map":
        getattr(msg, name).update(dict(_pairs(value, o.flag)))
    elif o.kind == "list":
        getattr(msg, name).extend(v for item in value for v in item.split(",") if v)
    elif o.kind == "ints":
        try:
            numbers = [int(v) for item in value for v in item.split(",") if v]
        except ValueError as exc:
            raise UsageError(f"{o.flag} expects whole numbers: {exc}") from exc
        getattr(msg, name).extend(numbers)
    elif o.kind == "seconds":
        getattr(msg, name).FromSeconds(value)
    elif o.kind == "enum":
        assert o.enum is not None
        prefix = o.enum.values[0].name.removesuffix("UNSPECIFIED")
        setattr(msg, name, o.enum.values_by_name[prefix + value.upper().replace("-", "_")].number)
    else:
        setattr(msg, name, value)


def apply_options(message: Message, args: argparse.Namespace, opts: Sequence[Opt]) -> list[str]:
    """Copy the options given on the command line into ``message``; return mask paths."""
    paths: list[str] = []
    for o in opts:
        value = getattr(args, o.dest, None)
        if value is None:
            continue
        _set(message, o, value)
        if o.mask_path not in paths:
            paths.append(o.mask_path)
    for path in getattr(args, "clear", []) or []:
        message.ClearField(path)
        if path not in paths:
            paths.append(path)
    return paths
