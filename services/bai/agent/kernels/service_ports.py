"""A kernel's apps: the image's service ports, the intrinsic ones, and preopen ports."""

from __future__ import annotations

from collections.abc import Mapping

from bai.api.common.v1 import session_pb2
from bai.common.image_labels import kernel_service_ports, parse_image_labels

_PROTOCOLS = {
    "http": session_pb2.APP_PROTOCOL_HTTP,
    "tcp": session_pb2.APP_PROTOCOL_TCP,
    "preopen": session_pb2.APP_PROTOCOL_PREOPEN,
    "vnc": session_pb2.APP_PROTOCOL_VNC,
    "rdp": session_pb2.APP_PROTOCOL_RDP,
}


def service_ports(
    labels: Mapping[str, str], preopen_ports: list[int], *, with_image_ports: bool = True
) -> list[session_pb2.ServicePort]:
    """Ports to publish, host ports not yet assigned; raises LabelError for bad labels."""
    parsed = parse_image_labels(labels)
    inference = set(parsed.endpoint_ports)
    ports = [
        session_pb2.ServicePort(
            name=port.name,
            protocol=_PROTOCOLS[port.protocol],
            container_ports=port.container_ports,
            is_inference=port.name in inference,
        )
        for port in (kernel_service_ports(parsed) if with_image_ports else ())
    ]
    used = {number for port in ports for number in port.container_ports}
    for number in preopen_ports:
        if number in used:
            continue
        used.add(number)
        ports.append(
            session_pb2.ServicePort(
                name=str(number),
                protocol=session_pb2.APP_PROTOCOL_PREOPEN,
                container_ports=[number],
            )
        )
    return ports
