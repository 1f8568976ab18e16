"""What upstream Backend.AI image labels say, as plain values (pure).

    ai.backend.service-ports   "jupyter:http:8080,tb:http:[6006,6007]"
    ai.backend.endpoint-ports  "jupyter"            (serve inference traffic)
    ai.backend.resource.min.<slot> / .max.<slot>
    ai.backend.accelerators    "cuda,rocm"
    ai.backend.features        "batch query uid-match"

Malformed entries are skipped: a label typo must not hide an image.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from bai.common.slots import canonical

SERVICE_PORTS = "ai.backend.service-ports"
ENDPOINT_PORTS = "ai.backend.endpoint-ports"
MIN_PREFIX = "ai.backend.resource.min."
MAX_PREFIX = "ai.backend.resource.max."
ACCELERATORS = "ai.backend.accelerators"
FEATURES = "ai.backend.features"
_ENTRY = re.compile(r"([A-Za-z0-9_.-]+):([a-z0-9]+):(\[[0-9, ]+\]|[0-9]+)")
_QUANTITY = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*((?:[kmgtpKMGTP](?:i?[bB])?)?)")
# Size suffixes, each 1024 times the one before ("" is a plain number).
_BINARY_UNITS = ("", "k", "m", "g", "t", "p")


@dataclass(frozen=True)
class ServicePortLabel:
    name: str
    protocol: str
    container_ports: tuple[int, ...]
    is_inference: bool = False


# What every kernel offers besides its labels, as the agent decides it
# (bai.agent.images.labels.kernel_service_ports): the terminal always, sshd only
# when the image's features list "sshd" (the image must ship it).
TTYD = ServicePortLabel("ttyd", "http", (7681,))
SSHD = ServicePortLabel("sshd", "tcp", (2200,))
FEATURE_SSHD = "sshd"


def service_ports(labels: dict[str, str]) -> list[ServicePortLabel]:
    inference = {n.strip() for n in labels.get(ENDPOINT_PORTS, "").split(",") if n.strip()}
    found: list[ServicePortLabel] = []
    for match in _ENTRY.finditer(labels.get(SERVICE_PORTS, "")):
        name, protocol, raw = match.groups()
        ports = tuple(int(p) for p in raw.strip("[]").split(",") if p.strip())
        if not ports or any(not 0 < p < 65536 for p in ports):
            continue
        found.append(ServicePortLabel(name, protocol, ports, name in inference))
    intrinsic = [TTYD, *([SSHD] if FEATURE_SSHD in features(labels) else [])]
    named = {p.name for p in found}
    used = {port for p in found for port in p.container_ports}
    extra = [
        p for p in intrinsic if p.name not in named and not used.intersection(p.container_ports)
    ]
    return [*found, *extra]


def quantity(raw: str) -> str | None:
    """ "2" -> "2", "0.5" -> "0.5", "256m" / "1g" / "1GiB" -> bytes; None when unreadable."""
    match = _QUANTITY.fullmatch(raw.strip())
    if match is None:
        return None
    number, unit = match.groups()
    try:
        value = Decimal(number) * 1024 ** _BINARY_UNITS.index(unit[:1].lower())
    except InvalidOperation:
        return None
    if not value.is_finite() or value < 0:
        return None
    return canonical(value)


def resource_bounds(labels: Mapping[str, str]) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """(minimum, maximum) per slot from the .min./.max. labels; unreadable ones are skipped."""
    low: dict[str, Decimal] = {}
    high: dict[str, Decimal] = {}
    for key, raw in labels.items():
        for prefix, target in ((MIN_PREFIX, low), (MAX_PREFIX, high)):
            slot = key.removeprefix(prefix)
            if key.startswith(prefix) and slot and (amount := quantity(raw)) is not None:
                target[slot] = Decimal(amount)
    return low, high


def resource_limits(labels: dict[str, str]) -> dict[str, tuple[str, str]]:
    """slot -> (min, max) as canonical decimals ("" when absent or unreadable)."""
    limits: dict[str, tuple[str, str]] = {}
    for key, value in labels.items():
        for prefix, index in ((MIN_PREFIX, 0), (MAX_PREFIX, 1)):
            if key.startswith(prefix):
                slot = key.removeprefix(prefix)
                pair = list(limits.get(slot, ("", "")))
                pair[index] = quantity(value) or ""
                limits[slot] = (pair[0], pair[1])
    return dict(sorted(limits.items()))


def accelerators(labels: dict[str, str]) -> list[str]:
    return [a.strip() for a in labels.get(ACCELERATORS, "").split(",") if a.strip()]


def features(labels: dict[str, str]) -> list[str]:
    return labels.get(FEATURES, "").split()
