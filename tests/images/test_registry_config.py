"""Registry configuration and the pure parts of rescans and pull references."""

from __future__ import annotations

import pytest

from bai.common.errors import NotFound
from bai.manager.config import ManagerConfig, RegistryConfig
from bai.manager.images.registries import find_registry, registry_ref
from bai.manager.images.rescan import (
    RescanScope,
    in_projects,
    selected_registries,
    split_reference,
)


def test_registries_parse_like_upstream_with_comma_separated_projects() -> None:
    config = ManagerConfig.model_validate(
        {
            "registries": {
                "cr.example.org": {"url": "https://cr.example.org", "project": "stable, ngc"},
                "local": {"url": "http://127.0.0.1:5000", "type": "local", "ssl_verify": False},
            }
        }
    )
    assert config.registries["cr.example.org"].project == ["stable", "ngc"]
    assert config.registries["local"].project == []
    assert not config.registries["local"].ssl_verify


def test_scope_selection() -> None:
    registries = {
        "a": RegistryConfig(url="http://a.example:5000"),
        "l": RegistryConfig(url="http://l.example", type="local"),
    }
    assert list(selected_registries(registries, RescanScope())) == ["a"]
    with pytest.raises(NotFound) as missing:
        selected_registries(registries, RescanScope(registry="zz"))
    assert missing.value.reason == "REFERENCE_NOT_FOUND"
    assert in_projects("stable/python", ["stable"]) and in_projects("x/y", [])
    assert not in_projects("stable2/python", ["stable"])
    assert split_reference("stable/python:3.11") == ("stable/python", "3.11")
    assert split_reference("stable/python") == ("stable/python", "")


def test_pull_references_carry_credentials_of_the_matching_registry() -> None:
    registries = {"mine": RegistryConfig(url="http://127.0.0.1:5000", username="u", password="p")}
    by_name = registry_ref(registries, "mine", "elsewhere/x/y:1")
    assert (by_name.name, by_name.url, by_name.username, by_name.password) == (
        "mine",
        "http://127.0.0.1:5000",
        "u",
        "p",
    )
    # Rows reported by agents carry the host as registry name.
    assert find_registry(registries, "127.0.0.1:5000", "127.0.0.1:5000/x/y:1") is not None
    unknown = registry_ref(registries, "cr.example.org", "cr.example.org/x/y:1")
    assert (unknown.name, unknown.url, unknown.password) == ("cr.example.org", "", "")
