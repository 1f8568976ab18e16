"""Messages for agents whose registry stream another manager replica holds.

`send` delivers to a stream held here, and otherwise publishes on a Redis
channel that every replica's `relay_forever` listens to; the replica holding
the stream delivers it. An agent connected nowhere gets the current state at
its next registration instead (config is re-read there), so nothing waits.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bai.api.manager.v1 import agent_registry_pb2 as reg
from bai.manager.agents.streams import AgentStreams

log = logging.getLogger(__name__)

CHANNEL = "bai:agent-commands"
# Wait before re-subscribing after Redis went away.
RETRY_SECONDS = 1.0


def _encode(agent_id: str, message: reg.ConnectResponse) -> bytes:
    return agent_id.encode() + b"\n" + message.SerializeToString()


def _decode(data: bytes) -> tuple[str, reg.ConnectResponse]:
    agent_id, _, payload = data.partition(b"\n")
    return agent_id.decode(), reg.ConnectResponse.FromString(payload)


async def send(
    redis: Redis, streams: AgentStreams, agent_id: str, message: reg.ConnectResponse
) -> None:
    if streams.push(agent_id, message):
        return
    try:
        await redis.publish(CHANNEL, _encode(agent_id, message))
    except RedisError as exc:
        log.warning("could not relay a message for agent %s: %s", agent_id, exc)


async def relay_forever(redis: Redis, streams: AgentStreams) -> None:
    """Deliver relayed messages to the streams held by this replica."""
    while True:
        try:
            async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(CHANNEL)
                async for item in pubsub.listen():
                    if item.get("type") != "message" or not isinstance(item.get("data"), bytes):
                        continue
                    agent_id, message = _decode(item["data"])
                    streams.push(agent_id, message)
        except (RedisError, OSError) as exc:
            log.warning("agent command relay lost Redis: %s", exc)
            await asyncio.sleep(RETRY_SECONDS)
