"""Driving one run of the kernel runner to its end, for the runner tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from bai.agent.runner.client import (
    RunnerClient,
    RunOutput,
    RunResult,
    RunSpec,
    RunWaitingInput,
)


@dataclass
class Transcript:
    outputs: list[RunOutput] = field(default_factory=list)
    prompts: list[RunWaitingInput] = field(default_factory=list)
    result: RunResult | None = None

    def text(self, stream: str) -> str:
        return b"".join(o.data for o in self.outputs if o.stream == stream).decode()

    def all_text(self) -> str:
        return b"".join(o.data for o in self.outputs).decode()


async def run(
    client: RunnerClient, spec: RunSpec, answers: list[bytes] | None = None
) -> Transcript:
    """One run to its result; each input request is answered with the next answer."""
    transcript = Transcript()
    pending = list(answers or [])
    handle = await client.start_run(spec)
    async with handle:
        async for event in handle.events():
            if isinstance(event, RunOutput):
                transcript.outputs.append(event)
            elif isinstance(event, RunWaitingInput):
                transcript.prompts.append(event)
                await handle.send_stdin(pending.pop(0), eof=not pending)
            else:
                transcript.result = event
    return transcript
