"""Upstream Backend.AI image labels, so that existing kernel images work unchanged.

    ai.backend.service-ports   "jupyter:http:8080,tb:http:[6006,6007]"
    ai.backend.endpoint-ports  "jupyter"            (serve inference traffic)
    ai.backend.resource.min.<slot> / .max.<slot>
    ai.backend.accelerators    "cuda,rocm"
    ai.backend.features        "batch query uid-match"

Pure functions over a label dict, one reading for agent and manager alike. The
agent parses strictly: a malformed label raises `LabelError` (a ValueError)
naming the label and the problem. The manager's catalogue reads past what does
not parse (the `offered_`/`readable_` functions at the end).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Literal

from bai.common.slots import canonical

LABEL_KERNELSPEC = "ai.backend.kernelspec"
LABEL_FEATURES = "ai.backend.features"
LABEL_SERVICE_PORTS = "ai.backend.service-ports"
LABEL_ENDPOINT_PORTS = "ai.backend.endpoint-ports"
LABEL_ACCELERATORS = "ai.backend.accelerators"
LABEL_BASE_DISTRO = "ai.backend.base-distro"
LABEL_RUNTIME_TYPE = "ai.backend.runtime-type"
LABEL_RUNTIME_PATH = "ai.backend.runtime-path"
RESOURCE_MIN_PREFIX = "ai.backend.resource.min."
RESOURCE_MAX_PREFIX = "ai.backend.resource.max."

ServiceProtocol = Literal["tcp", "http", "preopen", "vnc", "rdp"]
SERVICE_PROTOCOLS: frozenset[str] = frozenset({"tcp", "http", "preopen", "vnc", "rdp"})
# Below 1025 needs root; 2000-2003 were the upstream runner's own ports.
MIN_SERVICE_PORT = 1025
RESERVED_PORTS = range(2000, 2004)
MAX_PORT = 65535

FEATURE_SSHD = "sshd"
TTYD_PORT = 7681
SSHD_PORT = 2200

_BINARY_SUFFIXES = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
_SIZE_PATTERN = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgtpe]?)(?:i?b)?\s*$", re.IGNORECASE)
_PORT_SPEC = re.compile(r"^([A-Za-z0-9_.-]+):([a-z]+):(?:(\d+)|\[([\d\s,]*)\])$")


class LabelError(ValueError):
    def __init__(self, label: str, problem: str) -> None:
        super().__init__(f"image label {label}: {problem}")
        self.label = label
        self.problem = problem


@dataclass(frozen=True)
class ServicePort:
    """An app the image offers: a name, how to reach it, and its port(s) in the kernel."""

    name: str
    protocol: ServiceProtocol
    container_ports: tuple[int, ...]


@dataclass(frozen=True)
class ImageLabels:
    kernelspec: int = 1
    features: frozenset[str] = frozenset()
    service_ports: tuple[ServicePort, ...] = ()
    # Names of service ports that serve model inference.
    endpoint_ports: tuple[str, ...] = ()
    accelerators: tuple[str, ...] = ()
    # Slot name -> canonical decimal string (mem in bytes).
    min_slots: dict[str, str] = field(default_factory=dict)
    max_slots: dict[str, str] = field(default_factory=dict)
    base_distro: str = ""
    runtime_type: str = ""
    runtime_path: str = ""


def parse_image_labels(labels: Mapping[str, str]) -> ImageLabels:
    service_ports = parse_service_ports(labels.get(LABEL_SERVICE_PORTS, ""))
    endpoint_ports = _split_names(labels.get(LABEL_ENDPOINT_PORTS, ""), ",")
    declared = {port.name for port in service_ports}
    for name in endpoint_ports:
        if name not in declared:
            raise LabelError(LABEL_ENDPOINT_PORTS, f"{name!r} is not one of the service ports")
    return ImageLabels(
        kernelspec=_parse_kernelspec(labels.get(LABEL_KERNELSPEC, "1")),
        features=frozenset(_split_names(labels.get(LABEL_FEATURES, ""), None)),
        service_ports=service_ports,
        endpoint_ports=endpoint_ports,
        accelerators=_split_names(labels.get(LABEL_ACCELERATORS, ""), ","),
        min_slots=_resource_slots(labels, RESOURCE_MIN_PREFIX),
        max_slots=_resource_slots(labels, RESOURCE_MAX_PREFIX),
        base_distro=labels.get(LABEL_BASE_DISTRO, ""),
        runtime_type=labels.get(LABEL_RUNTIME_TYPE, ""),
        runtime_path=labels.get(LABEL_RUNTIME_PATH, ""),
    )


def parse_service_ports(value: str) -> tuple[ServicePort, ...]:
    """`name:proto:port` or `name:proto:[p1,p2]`, comma separated; "" is none."""
    ports: list[ServicePort] = []
    names: set[str] = set()
    used: set[int] = set()
    for spec in _split_outside_brackets(value):
        match = _PORT_SPEC.match(spec)
        if match is None:
            raise LabelError(LABEL_SERVICE_PORTS, f"{spec!r} is not name:protocol:port")
        name, protocol, single, many = match.groups()
        if protocol not in SERVICE_PROTOCOLS:
            raise LabelError(LABEL_SERVICE_PORTS, f"{name}: unknown protocol {protocol!r}")
        numbers = [single] if single is not None else [p for p in many.split(",") if p.strip()]
        if not numbers:
            raise LabelError(LABEL_SERVICE_PORTS, f"{name}: no port")
        container_ports = tuple(int(number) for number in numbers)
        for port in container_ports:
            _check_port(name, port)
            if port in used:
                raise LabelError(LABEL_SERVICE_PORTS, f"{name}: port {port} is used twice")
            used.add(port)
        if name in names:
            raise LabelError(LABEL_SERVICE_PORTS, f"{name!r} is declared twice")
        names.add(name)
        ports.append(ServicePort(name, protocol, container_ports))  # type: ignore[arg-type]
    return tuple(ports)


def kernel_service_ports(image: ImageLabels) -> tuple[ServicePort, ...]:
    """The image's service ports plus the intrinsic ones every kernel offers: ttyd
    always, sshd only when the image lists the "sshd" feature (it must ship sshd)."""
    intrinsic = [ServicePort("ttyd", "http", (TTYD_PORT,))]
    if FEATURE_SSHD in image.features:
        intrinsic.append(ServicePort("sshd", "tcp", (SSHD_PORT,)))
    names = {port.name for port in image.service_ports}
    used = {number for port in image.service_ports for number in port.container_ports}
    extra = [
        port
        for port in intrinsic
        if port.name not in names and not used.intersection(port.container_ports)
    ]
    return (*image.service_ports, *extra)


def parse_size(value: str) -> int:
    """ "256m" / "1g" / "1.5GiB" / "1048576" -> bytes (binary multiples, as upstream)."""
    match = _SIZE_PATTERN.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a size")
    number, suffix = match.groups()
    size = Decimal(number) * (Decimal(1024) ** _BINARY_SUFFIXES[suffix.lower()])
    return int(size)


def _check_port(name: str, port: int) -> None:
    if port < MIN_SERVICE_PORT or port > MAX_PORT:
        raise LabelError(
            LABEL_SERVICE_PORTS, f"{name}: port {port} is outside {MIN_SERVICE_PORT}-{MAX_PORT}"
        )
    if port in RESERVED_PORTS:
        raise LabelError(LABEL_SERVICE_PORTS, f"{name}: port {port} is reserved (2000-2003)")


def _split_outside_brackets(value: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current = ""
    for char in value:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return [part for part in parts if part]


def _split_names(value: str, separator: str | None) -> tuple[str, ...]:
    return tuple(name.strip() for name in value.split(separator) if name.strip())


def _parse_kernelspec(value: str) -> int:
    try:
        kernelspec = int(value)
    except ValueError:
        raise LabelError(LABEL_KERNELSPEC, f"{value!r} is not an integer") from None
    if kernelspec < 1:
        raise LabelError(LABEL_KERNELSPEC, f"{kernelspec} is not a version (>= 1)")
    return kernelspec


def _is_bytes_slot(slot: str) -> bool:
    return slot == "mem" or slot.endswith(".mem") or slot == "shmem"


def _resource_slots(labels: Mapping[str, str], prefix: str) -> dict[str, str]:
    slots: dict[str, str] = {}
    for label, raw in labels.items():
        if not label.startswith(prefix):
            continue
        slot = label[len(prefix) :]
        if not slot:
            raise LabelError(label, "no slot name")
        try:
            amount = Decimal(parse_size(raw)) if _is_bytes_slot(slot) else Decimal(raw.strip())
        except (ValueError, InvalidOperation):
            raise LabelError(label, f"{raw!r} is not an amount") from None
        if not amount.is_finite() or amount < 0:
            raise LabelError(label, f"{raw!r} is not an amount")
        slots[slot] = canonical(amount)
    return dict(sorted(slots.items()))


# --- Reading labels that may be malformed (the manager's image catalogue) ---
# A label typo must not hide an image: what does not parse is left out, exactly
# what the agent would refuse, so the catalogue never offers what a kernel lacks.


def offered_service_ports(labels: Mapping[str, str]) -> tuple[ServicePort, ...]:
    """The apps a kernel of this image offers (kernel_service_ports), leaving out each
    service-ports entry that does not parse or clashes with an earlier one."""
    kept: list[str] = []
    for spec in _split_outside_brackets(labels.get(LABEL_SERVICE_PORTS, "")):
        try:
            parse_service_ports(",".join([*kept, spec]))
        except LabelError:
            continue
        kept.append(spec)
    image = ImageLabels(
        features=frozenset(features(labels)), service_ports=parse_service_ports(",".join(kept))
    )
    return kernel_service_ports(image)


def endpoint_port_names(labels: Mapping[str, str]) -> frozenset[str]:
    """Names of the service ports that serve model inference."""
    return frozenset(_split_names(labels.get(LABEL_ENDPOINT_PORTS, ""), ","))


def readable_resource_bounds(
    labels: Mapping[str, str],
) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """(minimum, maximum) per slot from the .min./.max. labels that parse."""
    low: dict[str, Decimal] = {}
    high: dict[str, Decimal] = {}
    for label, raw in labels.items():
        for prefix, bounds in ((RESOURCE_MIN_PREFIX, low), (RESOURCE_MAX_PREFIX, high)):
            if label.startswith(prefix):
                try:
                    parsed = _resource_slots({label: raw}, prefix)
                except LabelError:
                    continue
                bounds.update((slot, Decimal(amount)) for slot, amount in parsed.items())
    return low, high


def features(labels: Mapping[str, str]) -> list[str]:
    return list(_split_names(labels.get(LABEL_FEATURES, ""), None))


def accelerators(labels: Mapping[str, str]) -> list[str]:
    return list(_split_names(labels.get(LABEL_ACCELERATORS, ""), ","))
