"""How the e2e agents are configured: `bai agent start` takes its slot shares from
BAI_AGENT__CPU / BAI_AGENT__MEM, as the agent's config documents."""

from __future__ import annotations

from bai.agent.config import AgentConfig
from bai.common.config import load_config


def test_quoted_slot_shares_from_the_environment() -> None:
    environ = {"BAI_AGENT__CPU": '"2"', "BAI_AGENT__MEM": '"2147483648"'}
    config = load_config(AgentConfig, path=None, env_prefix="BAI_AGENT", environ=environ)
    assert (config.cpu, config.mem) == ("2", "2147483648")


def test_plain_slot_shares_from_the_environment() -> None:
    environ = {"BAI_AGENT__CPU": "2", "BAI_AGENT__MEM": "2147483648"}
    config = load_config(AgentConfig, path=None, env_prefix="BAI_AGENT", environ=environ)
    assert (config.cpu, config.mem) == ("2", "2147483648")
