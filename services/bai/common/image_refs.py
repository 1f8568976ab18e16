"""Docker image references (distribution/reference's grammar), for the agent, which
commits and pushes under them, and the manager, which names committed images."""

from __future__ import annotations

import re

DEFAULT_TAG = "latest"
MAX_NAME_LENGTH = 255
# Docker's reference grammar (distribution/reference): a registry host only when the
# first component looks like one, lower-case path components, a tag of up to 128.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
DOMAIN = re.compile(rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?")
PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def _looks_like_registry(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def reference_problem(reference: str) -> str | None:
    """Why `reference` is not a Docker image reference with an optional tag, or None."""
    if not reference:
        return "is required"
    if "@" in reference:
        return "must name a tag, not a digest"
    name, tag = reference, ""
    last_slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > last_slash:
        name, tag = reference[:colon], reference[colon + 1 :]
        if not TAG.fullmatch(tag):
            return f"has an invalid tag {tag!r} (letters, digits, _ . -, at most 128)"
    if len(name) > MAX_NAME_LENGTH:
        return f"has a name longer than {MAX_NAME_LENGTH} characters"
    components = name.split("/")
    if len(components) > 1 and _looks_like_registry(components[0]):
        if not DOMAIN.fullmatch(components[0]):
            return f"has an invalid registry host {components[0]!r}"
        components = components[1:]
    for component in components:
        if not PATH_COMPONENT.fullmatch(component):
            return (
                f"has an invalid path component {component!r} "
                "(lower-case letters and digits, separated by . _ __ or -)"
            )
    return None
