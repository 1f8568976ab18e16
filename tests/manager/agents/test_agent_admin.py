"""AgentService (admin): who reads and changes agents, and what they see."""

from __future__ import annotations

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from bai.api.common.v1 import node_pb2
from bai.api.manager.v1 import agent_pb2, agent_pb2_grpc
from bai.manager.db.policies import ScalingGroupForDomainRow, ScalingGroupRow
from tests.manager.agents.fake_agent import RegistryClient, place_session, registration
from tests.manager.callers import invoke, make_caller, make_domain, refused, superadmin
from tests.manager.fixtures import ManagerHandle, unique
from tests.rpc_errors import reason_of

Stub = agent_pb2_grpc.AgentServiceStub


async def registered_agent(channel: grpc.aio.Channel, group: str = "default") -> str:
    agent_id = unique("i")
    client = RegistryClient(channel)
    await client.register(registration(agent_id, scaling_group=group))
    await client.close()
    return agent_id


async def test_superadmin_lists_and_reads_agents(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    admin = await superadmin(manager)
    agent_id = await registered_agent(channel)
    await place_session(manager, agent_id, ["RUNNING"])
    listed = await invoke(
        channel,
        Stub,
        admin,
        "ListAgents",
        agent_pb2.ListAgentsRequest(statuses=[agent_pb2.AGENT_STATUS_ALIVE], page_size=1000),
    )
    found = [a for a in listed.agents if a.id == agent_id]
    assert len(found) == 1
    assert found[0].kernel_count == 1
    assert found[0].available_slots.slots["cpu"] == "4"
    assert found[0].occupied_slots.slots["cpu"] == "1"
    assert not found[0].HasField("hardware")
    got = await invoke(
        channel, Stub, admin, "GetAgent", agent_pb2.GetAgentRequest(agent_id=agent_id)
    )
    assert got.agent.status == agent_pb2.AGENT_STATUS_ALIVE
    assert got.agent.hardware.hostname == "node01" and got.agent.hardware.cpu_cores == 4
    assert [p.key for p in got.agent.compute_plugins] == ["cpu"]
    assert [(t.slot_name, t.type) for t in got.agent.slot_types] == [
        ("cpu", node_pb2.SLOT_TYPE_COUNT),
        ("mem", node_pb2.SLOT_TYPE_BYTES),
    ]
    assert got.agent.scaling_group == "default"
    missing = await refused(
        invoke(channel, Stub, admin, "GetAgent", agent_pb2.GetAgentRequest(agent_id="nope"))
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND


async def test_list_pages_by_id(manager: ManagerHandle, channel: grpc.aio.Channel) -> None:
    admin = await superadmin(manager)
    for _ in range(3):
        await registered_agent(channel)
    seen: list[str] = []
    token = ""
    while True:
        page = await invoke(
            channel,
            Stub,
            admin,
            "ListAgents",
            agent_pb2.ListAgentsRequest(page_size=2, page_token=token),
        )
        seen.extend(a.id for a in page.agents)
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) >= 3


async def test_roles(manager: ManagerHandle, channel: grpc.aio.Channel) -> None:
    domain = await make_domain(manager)
    group = unique("sg")
    async with manager.ctx.sessions() as db, db.begin():
        db.add(ScalingGroupRow(name=group))
        await db.flush()
        db.add(ScalingGroupForDomainRow(scaling_group=group, domain_name=domain))
    bound = await registered_agent(channel, group)
    other = await registered_agent(channel)
    domain_admin = await make_caller(manager, "admin", domain)
    monitor = await make_caller(manager, "monitor", domain)
    user = await make_caller(manager, "user", domain)

    listed = await invoke(
        channel, Stub, domain_admin, "ListAgents", agent_pb2.ListAgentsRequest(page_size=1000)
    )
    assert [a.id for a in listed.agents] == [bound]
    hidden = await refused(
        invoke(channel, Stub, domain_admin, "GetAgent", agent_pb2.GetAgentRequest(agent_id=other))
    )
    assert hidden.code() == grpc.StatusCode.NOT_FOUND
    got = await invoke(
        channel, Stub, monitor, "GetAgent", agent_pb2.GetAgentRequest(agent_id=other)
    )
    assert got.agent.id == other
    denied = await refused(invoke(channel, Stub, user, "ListAgents", agent_pb2.ListAgentsRequest()))
    assert reason_of(denied) == "ROLE_FORBIDDEN"

    update = agent_pb2.UpdateAgentRequest(
        agent=agent_pb2.Agent(id=bound, schedulable=False),
        update_mask=FieldMask(paths=["schedulable"]),
    )
    assert reason_of(await refused(invoke(channel, Stub, monitor, "UpdateAgent", update))) == (
        "READ_ONLY_ROLE"
    )
    assert (
        reason_of(await refused(invoke(channel, Stub, domain_admin, "UpdateAgent", update)))
        == "ROLE_FORBIDDEN"
    )


async def test_superadmin_updates_an_agent(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    admin = await superadmin(manager)
    agent_id = unique("i")
    client = RegistryClient(channel)
    try:
        await client.register(registration(agent_id))
        group = unique("sg")
        async with manager.ctx.sessions() as db, db.begin():
            db.add(ScalingGroupRow(name=group))
        updated = await invoke(
            channel,
            Stub,
            admin,
            "UpdateAgent",
            agent_pb2.UpdateAgentRequest(
                agent=agent_pb2.Agent(id=agent_id, schedulable=False, scaling_group=group),
                update_mask=FieldMask(paths=["schedulable", "scaling_group"]),
            ),
        )
        assert not updated.agent.schedulable and updated.agent.scaling_group == group
        # The connected agent is told on its registry stream.
        pushed = await client.recv()
        assert pushed.WhichOneof("payload") == "config"
        assert pushed.config.scaling_group == group

        bad_group = await refused(
            invoke(
                channel,
                Stub,
                admin,
                "UpdateAgent",
                agent_pb2.UpdateAgentRequest(
                    agent=agent_pb2.Agent(id=agent_id, scaling_group="no-such-group"),
                    update_mask=FieldMask(paths=["scaling_group"]),
                ),
            )
        )
        assert reason_of(bad_group) == "REFERENCE_NOT_FOUND"
        bad_mask = await refused(
            invoke(
                channel,
                Stub,
                admin,
                "UpdateAgent",
                agent_pb2.UpdateAgentRequest(
                    agent=agent_pb2.Agent(id=agent_id), update_mask=FieldMask(paths=["addr"])
                ),
            )
        )
        assert bad_mask.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await client.close()
