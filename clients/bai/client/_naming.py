"""Naming and typing rules shared by the SDK generator (scripts/gen_sdk.py) and the tests.

RPC ``ListKeypairResourcePolicies`` becomes method ``list_keypair_resource_policies``,
its pager ``iter_keypair_resource_policies``; service ``ResourcePolicyService``
becomes attribute ``resource_policies`` of the client. A request field becomes a
keyword argument typed as in :func:`python_type`.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

# Public packages the SDK covers and internal services it leaves out.
PACKAGES = ("bai.api.manager.v1",)
INTERNAL_SERVICES = frozenset({"bai.api.manager.v1.AgentRegistryService"})

# Words that read as one token although they are not CamelCase.
_ONE_WORD = {"VFolder": "Vfolder"}
# Attribute names that are not simply "<snake name>s".
_ATTRIBUTE_OVERRIDES = {"AuthService": "auth", "BackgroundTaskService": "tasks"}

_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake(name: str) -> str:
    """CamelCase to snake_case: ``WhoAmI`` -> ``who_am_i``.

    ``ListVFolders`` -> ``list_vfolders``.
    """
    for word, replacement in _ONE_WORD.items():
        name = name.replace(word, replacement)
    return _BOUNDARY.sub("_", name).lower()


def pluralize(word: str) -> str:
    if word.endswith("y") and not word.endswith(("ay", "ey", "oy", "uy")):
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "ch", "sh")):
        return word if word.endswith("s") else word + "es"
    return word + "s"


def service_attribute(service_name: str) -> str:
    """Attribute of Client for a service: ``DomainService`` -> ``domains``."""
    if service_name in _ATTRIBUTE_OVERRIDES:
        return _ATTRIBUTE_OVERRIDES[service_name]
    base = service_name.removesuffix("Service")
    return pluralize(snake(base))


def method_name(rpc_name: str) -> str:
    return snake(rpc_name)


def pager_name(rpc_name: str) -> str:
    """``ListDomains`` -> ``iter_domains``."""
    return "iter_" + snake(rpc_name.removeprefix("List"))


def is_read(rpc_name: str) -> bool:
    """Reads are safe to retry: Get*, List*, Watch*, Stream* (server streams of logs,
    events) and WhoAmI."""
    return rpc_name.startswith(("Get", "List", "Watch", "Stream")) or rpc_name == "WhoAmI"


# Keywords a generated method already uses; a field with such a name gets a "_" suffix.
RESERVED = frozenset({"request", "requests", "timeout", "metadata", "retry", "self"})
SCALARS = {
    FieldDescriptor.TYPE_DOUBLE: "float",
    FieldDescriptor.TYPE_FLOAT: "float",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_STRING: "str",
    FieldDescriptor.TYPE_BYTES: "bytes",
}
# Message type -> the friendlier Python type also accepted (see bai.client._requests).
FRIENDLY = {
    "google.protobuf.Timestamp": "datetime",
    "google.protobuf.Duration": "timedelta",
    "google.protobuf.FieldMask": "Iterable[str]",
    "bai.api.common.v1.ResourceSlots": "Mapping[str, str]",
}


def param_name(field_name: str) -> str:
    reserved = keyword.iskeyword(field_name) or field_name in RESERVED
    return field_name + "_" if reserved else field_name


def module_of(file_name: str) -> str:
    """``bai/api/manager/v1/domain.proto`` -> ``bai.api.manager.v1.domain_pb2``."""
    return file_name.removesuffix(".proto").replace("/", ".") + "_pb2"


def alias_of(module: str) -> str:
    """Import alias: the stem for the SDK's own packages and google's; other bai.api
    packages get their domain as prefix (``common_session_pb2``), avoiding clashes."""
    package, stem = module.rsplit(".", 1)
    parts = package.split(".")
    if package in PACKAGES or parts[0] != "bai":
        return stem
    return f"{parts[2] if len(parts) > 2 else parts[-1]}_{stem}"


Ref = Callable[[Descriptor | EnumDescriptor], str]


def _value_type(field: FieldDescriptor, ref: Ref) -> str:
    if field.type == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        return f"{ref(field.enum_type)}.ValueType | str"
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        assert field.message_type is not None
        extra = FRIENDLY.get(field.message_type.full_name)
        name = ref(field.message_type)
        return f"{name} | {extra}" if extra else name
    return SCALARS.get(field.type, "int")


def python_type(field: FieldDescriptor, ref: Ref) -> str:
    """The annotation of a request field's keyword; ``ref`` names a message or enum."""
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        key = _value_type(entry.fields_by_name["key"], ref)
        return f"Mapping[{key}, {_value_type(entry.fields_by_name['value'], ref)}]"
    if field.is_repeated:
        return f"Iterable[{_value_type(field, ref)}]"
    return _value_type(field, ref)
