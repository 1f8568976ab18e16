"""``bai admin agent ls|info|update|stats``: the agent nodes that run kernels.

Superadmins see and change every agent; monitors read; domain admins read the agents of
their domain's scaling groups unless the manager hides agents. Memory-like slots (those
an agent counts in bytes) are shown in binary units (``31.2g``); --json shows raw values.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Generator, Sequence
from decimal import Decimal, InvalidOperation
from itertools import islice
from typing import Any

from bai.api.common.v1 import node_pb2, stats_pb2
from bai.api.manager.v1 import agent_pb2
from bai.cli.admin._common import add_paging, leaf, subcommands
from bai.cli.context import Context, UsageError
from bai.cli.fields import enum_choices
from bai.cli.output import EMPTY, path_text, table, to_dict
from bai.cli.session_streams import print_ndjson, quiet_interrupt
from bai.cli.units import format_size, parse_duration
from bai.client._requests import short_enum_name

STATUS = agent_pb2.AgentStatus.DESCRIPTOR
STATUS_CHOICES = enum_choices(STATUS)
LIST_HEADERS = [
    "ID", "STATUS", "SCHEDULABLE", "SCALING GROUP", "ADDRESS", "ARCH",
    "AVAILABLE", "OCCUPIED", "KERNELS", "VERSION", "LAST HEARTBEAT",
]  # fmt: skip


def _bytes_slots(agent: agent_pb2.Agent) -> set[str]:
    named = {t.slot_name for t in agent.slot_types if t.type == node_pb2.SLOT_TYPE_BYTES}
    return named or {"mem"}


def slot_text(slot: str, value: str, bytes_slots: set[str]) -> str:
    """``mem``'s ``"34359738368"`` -> ``"32g"``; counts as given."""
    if slot not in bytes_slots:
        return value
    try:
        return format_size(int(Decimal(value)))
    except (InvalidOperation, ValueError):
        return value


def slots_text(agent: agent_pb2.Agent, which: str) -> str:
    """``cpu=8,mem=32g``: the agent's available_slots or occupied_slots."""
    slots = getattr(agent, which).slots
    shown = _bytes_slots(agent)
    return ",".join(f"{k}={slot_text(k, slots[k], shown)}" for k in sorted(slots)) or EMPTY


def status_text(agent: agent_pb2.Agent) -> str:
    return short_enum_name(STATUS, agent.status) if agent.status else EMPTY


def list_row(agent: agent_pb2.Agent) -> list[str]:
    return [
        agent.id,
        status_text(agent),
        "yes" if agent.schedulable else "no",
        agent.scaling_group or EMPTY,
        agent.addr or EMPTY,
        agent.architecture or EMPTY,
        slots_text(agent, "available_slots"),
        slots_text(agent, "occupied_slots"),
        str(agent.kernel_count),
        agent.version or EMPTY,
        path_text(agent, "last_heartbeat_at"),
    ]


def ls(args: argparse.Namespace, ctx: Context) -> int:
    agents = ctx.client().agents.iter_agents(
        page_size=args.page_size,
        statuses=args.status or None,
        scaling_group=args.scaling_group,
        schedulable=args.schedulable,
        architecture=args.arch,
    )
    found = list(islice(agents, args.limit))
    if ctx.json:
        ctx.print(json.dumps([to_dict(agent) for agent in found], indent=2))
    else:
        ctx.print(table(LIST_HEADERS, [list_row(agent) for agent in found]))
    return 0


def agent_rows(agent: agent_pb2.Agent) -> list[tuple[str, str]]:
    """The agent's own fields as (key, text), hardware aside."""
    return [
        ("id", agent.id),
        ("status", status_text(agent)),
        ("status_changed_at", path_text(agent, "status_changed_at")),
        ("schedulable", "yes" if agent.schedulable else "no"),
        ("scaling_group", agent.scaling_group or EMPTY),
        ("region", agent.region or EMPTY),
        ("addr", agent.addr or EMPTY),
        ("public_host", agent.public_host or EMPTY),
        ("architecture", agent.architecture or EMPTY),
        ("version", agent.version or EMPTY),
        ("kernels", str(agent.kernel_count)),
        ("auto_terminate_abusing_kernel", "yes" if agent.auto_terminate_abusing_kernel else "no"),
        ("first_contact_at", path_text(agent, "first_contact_at")),
        ("last_heartbeat_at", path_text(agent, "last_heartbeat_at")),
        ("lost_at", path_text(agent, "lost_at")),
    ]


def hardware_rows(hw: node_pb2.HardwareInfo) -> list[tuple[str, str]]:
    cpu = f"{hw.cpu_model or EMPTY} ({hw.cpu_cores} cores)" if hw.cpu_cores else hw.cpu_model
    return [
        ("hostname", hw.hostname or EMPTY),
        ("os", hw.os or EMPTY),
        ("kernel_version", hw.kernel_version or EMPTY),
        ("cpu", cpu or EMPTY),
        ("memory", format_size(hw.memory_bytes) if hw.memory_bytes else EMPTY),
        ("container_runtime", hw.container_runtime or EMPTY),
    ]


def print_rows(ctx: Context, rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        ctx.print(f"{key.ljust(width)}  {value}")


def slot_table(agent: agent_pb2.Agent) -> list[list[str]]:
    """One row per slot: SLOT, TYPE, UNIT, AVAILABLE, OCCUPIED."""
    types = {t.slot_name: t for t in agent.slot_types}
    available, occupied = agent.available_slots.slots, agent.occupied_slots.slots
    shown = _bytes_slots(agent)
    rows = []
    for slot in sorted({*types, *available, *occupied}):
        kind = types[slot].type if slot in types else 0
        rows.append(
            [
                slot,
                short_enum_name(node_pb2.SlotType.DESCRIPTOR, kind) if kind else EMPTY,
                types[slot].display_unit if slot in types and types[slot].display_unit else EMPTY,
                slot_text(slot, available[slot], shown) if slot in available else EMPTY,
                slot_text(slot, occupied[slot], shown) if slot in occupied else "0",
            ]
        )
    return rows


def plugin_table(plugins: Sequence[node_pb2.ComputePluginInfo]) -> list[list[str]]:
    status = node_pb2.ComputePluginStatus.DESCRIPTOR
    return [
        [
            p.key,
            p.version or EMPTY,
            short_enum_name(status, p.status) if p.status else EMPTY,
            ",".join(t.slot_name for t in p.slot_types) or EMPTY,
            ",".join(f"{k}={p.metadata[k]}" for k in sorted(p.metadata)) or EMPTY,
            p.status_message or EMPTY,
        ]
        for p in plugins
    ]


def device_table(hw: node_pb2.HardwareInfo) -> list[list[str]]:
    return [
        [
            d.plugin,
            d.device_id,
            d.model_name or EMPTY,
            format_size(d.memory_bytes) if d.memory_bytes else EMPTY,
            str(d.numa_node) if d.numa_node >= 0 else EMPTY,
            d.bus_id or EMPTY,
        ]
        for d in hw.devices
    ]


def info(args: argparse.Namespace, ctx: Context) -> int:
    agent = ctx.client().agents.get_agent(agent_id=args.agent).agent
    if ctx.json:
        ctx.print(json.dumps(to_dict(agent), indent=2))
        return 0
    hw = agent.hardware
    print_rows(ctx, agent_rows(agent) + hardware_rows(hw))
    plugins = agent.compute_plugins or hw.compute_plugins
    for headers, body in (
        (["SLOT", "TYPE", "UNIT", "AVAILABLE", "OCCUPIED"], slot_table(agent)),
        (["PLUGIN", "VERSION", "STATUS", "SLOTS", "METADATA", "MESSAGE"], plugin_table(plugins)),
        (["PLUGIN", "DEVICE", "MODEL", "MEMORY", "NUMA", "BUS"], device_table(hw)),
    ):
        if body:
            ctx.print()
            ctx.print(table(headers, body))
    return 0


def update(args: argparse.Namespace, ctx: Context) -> int:
    agent = agent_pb2.Agent(id=args.agent)
    paths = []
    if args.schedulable is not None:
        agent.schedulable = args.schedulable
        paths.append("schedulable")
    if args.scaling_group is not None:
        agent.scaling_group = args.scaling_group
        paths.append("scaling_group")
    if args.auto_terminate_abusing_kernel is not None:
        agent.auto_terminate_abusing_kernel = args.auto_terminate_abusing_kernel
        paths.append("auto_terminate_abusing_kernel")
    if not paths:
        raise UsageError("nothing to update: give at least one field option (see --help)")
    updated = ctx.client().agents.update_agent(agent=agent, update_mask=paths).agent
    if ctx.json:
        ctx.print(json.dumps(to_dict(updated), indent=2))
    else:
        print_rows(ctx, agent_rows(updated))
    return 0


def _rate(now: int, before: int, seconds: float) -> str:
    return f"{format_size(int(max(now - before, 0) / seconds))}/s" if seconds > 0 else EMPTY


def _devices(devices: Sequence[stats_pb2.DeviceStats]) -> list[str]:
    return [
        f"{d.plugin}:{d.device_id} {d.util_percent:.0f}% "
        f"{format_size(d.mem_used_bytes)}/{format_size(d.mem_total_bytes)}"
        for d in devices
    ]


def sample_line(
    sample: agent_pb2.WatchAgentStatsResponse,
    previous: agent_pb2.WatchAgentStatsResponse | None = None,
) -> str:
    """``TIME  cpu 250.0%  mem 3g/32g  net rx 1.2g tx 300m  disk 50g/200g  cuda:0 45% 3g/80g``.

    Network counters are cumulative; from the second sample on, each is followed by its rate.
    """
    node = sample.node
    rx, tx = format_size(node.net_rx_bytes), format_size(node.net_tx_bytes)
    if previous is not None:
        seconds = (sample.time.ToNanoseconds() - previous.time.ToNanoseconds()) / 1e9
        before = previous.node
        rx += f" ({_rate(node.net_rx_bytes, before.net_rx_bytes, seconds)})"
        tx += f" ({_rate(node.net_tx_bytes, before.net_tx_bytes, seconds)})"
    parts = [
        path_text(sample, "time"),
        f"cpu {node.cpu_util_percent:.1f}%",
        f"mem {format_size(node.mem_used_bytes)}/{format_size(node.mem_total_bytes)}",
        f"net rx {rx} tx {tx}",
        f"disk {format_size(node.disk_used_bytes)}/{format_size(node.disk_total_bytes)}",
        *_devices(node.devices),
    ]
    return "  ".join(parts)


def kernel_line(k: stats_pb2.KernelStats) -> str:
    parts = [
        f"  kernel {k.kernel_id}",
        f"cpu {k.cpu_util_percent:.1f}%",
        f"mem {format_size(k.mem_used_bytes)}/{format_size(k.mem_limit_bytes)}",
        f"net rx {format_size(k.net_rx_bytes)} tx {format_size(k.net_tx_bytes)}",
        f"io r {format_size(k.io_read_bytes)} w {format_size(k.io_write_bytes)}",
        *_devices(k.devices),
    ]
    return "  ".join(parts)


def stats(args: argparse.Namespace, ctx: Context) -> int:
    try:
        interval = parse_duration(args.interval)
    except ValueError as exc:
        raise UsageError(f"--interval: {exc}") from exc
    stream = ctx.client().agents.watch_agent_stats(
        agent_id=args.agent, interval=interval, include_kernels=args.kernels or None
    )
    previous = None
    try:
        for sample in stream:
            if ctx.json:
                print_ndjson(ctx, sample)
            else:
                ctx.print(sample_line(sample, previous))
                for kernel in sample.kernels:
                    ctx.print(kernel_line(kernel))
                ctx.out.flush()
            if args.once:
                break
            previous = sample
    finally:
        # Closing the SDK's generator cancels the call now (after --once), not at exit.
        if isinstance(stream, Generator):
            stream.close()
    return 0


def _schedulable_args(p: argparse.ArgumentParser, on: str, off: str) -> None:
    choice = p.add_mutually_exclusive_group()
    choice.add_argument(
        "--schedulable", dest="schedulable", action="store_const", const=True, help=on
    )
    choice.add_argument(
        "--unschedulable", dest="schedulable", action="store_const", const=False, help=off
    )


def _agent_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("agent", metavar="ID", help='agent id, e.g. "i-node01"')


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    cmds = subcommands(sub, "agent", "agent nodes: list, inspect, drain, move, watch")
    p = leaf(
        cmds,
        "ls",
        "list agents",
        ls,
        common,
        aliases=["list"],
        description="List agents, ordered by id: status, scaling group, the address the "
        "manager reaches them at, their slots (AVAILABLE: capacity after reserved "
        "resources; OCCUPIED: allocated to kernels), kernel count, version and last "
        "heartbeat. An agent is LOST after missing heartbeats (40 s by default).",
    )
    p.add_argument(
        "--status",
        action="append",
        type=str.lower,
        choices=STATUS_CHOICES,
        metavar="STATUS",
        help=f"only agents in this status (repeatable; one of: {', '.join(STATUS_CHOICES)})",
    )
    p.add_argument("--scaling-group", metavar="SG", help="only agents of this scaling group")
    p.add_argument("--arch", metavar="ARCH", help="only this architecture (x86_64, aarch64)")
    _schedulable_args(p, "only schedulable agents", "only agents closed to new kernels")
    add_paging(p)
    p = leaf(
        cmds,
        "info",
        "show an agent: hardware, slots, compute plugins, devices",
        info,
        common,
    )
    _agent_arg(p)
    p = leaf(
        cmds,
        "update",
        "drain an agent or move it to another scaling group (superadmin)",
        update,
        common,
        description="Change an agent (only the options given). --unschedulable drains it: "
        "running kernels keep running but no new ones are placed there. --scaling-group "
        "takes effect for new placements; the agent is told at once. Superadmin only.",
    )
    _agent_arg(p)
    _schedulable_args(p, "accept new kernels again", "place no new kernels here (drain)")
    p.add_argument("--scaling-group", metavar="SG", help="move the agent to this scaling group")
    p.add_argument(
        "--auto-terminate-abusing-kernel",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="kill kernels flagged as abusing (e.g. crypto mining)",
    )
    p = leaf(
        cmds,
        "stats",
        "follow an agent's live resource usage",
        quiet_interrupt(stats),
        common,
        description="Print a line per sample of the node's CPU (100% = one core), memory, "
        "network (cumulative bytes; rates from the second sample on), disk and device "
        "(GPU) usage, until the agent is lost or Ctrl-C. --json: NDJSON.",
    )
    _agent_arg(p)
    p.add_argument("--once", action="store_true", help="print the first sample and exit")
    p.add_argument("--interval", default="5s", metavar="DURATION", help="at least 1s (default 5s)")
    p.add_argument("--kernels", action="store_true", help="also a line per kernel on the agent")
