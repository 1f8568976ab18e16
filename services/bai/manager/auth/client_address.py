"""Which address a call comes from, and whether a user may call from it.

Behind Envoy the gRPC peer is the proxy; the caller is the right-most
address in x-forwarded-for that is not itself a trusted proxy. Forwarded
headers from anyone else are ignored, so they cannot be forged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def peer_address(peer: str) -> IPAddress | None:
    """Parse grpc's peer string: "ipv4:1.2.3.4:5678" or "ipv6:[::1]:5678"."""
    kind, _, rest = peer.partition(":")
    try:
        if kind == "ipv4":
            return ipaddress.ip_address(rest.rsplit(":", 1)[0])
        if kind == "ipv6":
            return ipaddress.ip_address(rest.rsplit(":", 1)[0].strip("[]"))
    except ValueError:
        return None
    return None


def client_address(
    peer: str, forwarded_for: str | None, trusted: Sequence[IPNetwork]
) -> IPAddress | None:
    address = peer_address(peer)
    if address is None or not forwarded_for or not _in(address, trusted):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        try:
            hop_address = ipaddress.ip_address(hop)
        except ValueError:
            return address  # a malformed chain: trust only the real peer
        if not _in(hop_address, trusted):
            return hop_address
        address = hop_address
    return address


def _in(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def is_allowed(address: IPAddress | None, allowed: Sequence[IPNetwork]) -> bool:
    """Empty `allowed` means any address."""
    if not allowed:
        return True
    return address is not None and _in(address, allowed)


def parse_networks(values: Sequence[str]) -> tuple[IPNetwork, ...]:
    """Networks from stored strings; unparsable ones are skipped (input is validated)."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            continue
    return tuple(networks)
