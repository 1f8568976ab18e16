"""Background tasks (BackgroundTaskService's records), kept in Redis.

A task is one JSON record under bai:bgtask:<id> plus a stream of its events
under bai:bgtask:<id>:events, so that any replica can read or watch a task
that another replica runs. Finished tasks are kept for 25 hours.

    task = await tasks.start("vfolder.clone", principal, work)

`work(progress)` reports with `await progress.update(current, total, message)`
and returns the task's result map; a BaiError it raises fails the task with
that message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from redis.asyncio import Redis

from bai.api.manager.v1 import bgtask_pb2 as pb
from bai.common.errors import BaiError
from bai.manager.api.convert import timestamp_from_epoch
from bai.manager.auth.access import can_read_domain_objects
from bai.manager.auth.principal import Principal

log = logging.getLogger(__name__)

KEEP_RUNNING_SECONDS = 7 * 86400
KEEP_FINISHED_SECONDS = 25 * 3600
STATUS = {
    "pending": pb.BACKGROUND_TASK_STATUS_PENDING,
    "running": pb.BACKGROUND_TASK_STATUS_RUNNING,
    "done": pb.BACKGROUND_TASK_STATUS_DONE,
    "failed": pb.BACKGROUND_TASK_STATUS_FAILED,
    "cancelled": pb.BACKGROUND_TASK_STATUS_CANCELLED,
}
EVENT_OF_STATUS = {
    "pending": pb.BACKGROUND_TASK_EVENT_TYPE_UPDATED,
    "running": pb.BACKGROUND_TASK_EVENT_TYPE_UPDATED,
    "done": pb.BACKGROUND_TASK_EVENT_TYPE_DONE,
    "failed": pb.BACKGROUND_TASK_EVENT_TYPE_FAILED,
    "cancelled": pb.BACKGROUND_TASK_EVENT_TYPE_CANCELLED,
}
FINISHED = ("done", "failed", "cancelled")


def _key(task_id: str) -> str:
    return f"bai:bgtask:{task_id}"


def _events_key(task_id: str) -> str:
    return f"bai:bgtask:{task_id}:events"


@dataclass
class TaskRecord:
    id: str
    kind: str
    user_id: str
    domain_name: str
    status: str = "pending"
    current: int = 0
    total: int = 0
    message: str = ""
    errors: list[str] = field(default_factory=list)
    result: dict[str, str] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    finished_at: float = 0.0

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_proto(self) -> pb.BackgroundTask:
        return pb.BackgroundTask(
            id=self.id,
            kind=self.kind,
            status=STATUS[self.status],
            current_progress=self.current,
            total_progress=self.total,
            message=self.message,
            errors=self.errors,
            result=self.result,
            cancellable=False,
            user_id=self.user_id,
            created_at=timestamp_from_epoch(self.created_at),
            updated_at=timestamp_from_epoch(self.updated_at),
            finished_at=timestamp_from_epoch(self.finished_at) if self.finished_at else None,
        )


def visible_to(p: Principal, record: TaskRecord) -> bool:
    """BackgroundTaskService's rule: the starter, admins and monitors of the
    task's domain, superadmins. Anyone else gets NOT_FOUND."""
    return record.user_id == str(p.user_id) or can_read_domain_objects(p, record.domain_name)


class Progress:
    def __init__(self, tasks: BackgroundTasks, record: TaskRecord) -> None:
        self._tasks, self._record = tasks, record

    async def update(self, current: int, total: int, message: str) -> None:
        record = self._record
        record.status, record.current, record.total, record.message = (
            "running",
            current,
            total,
            message,
        )
        await self._tasks.save(record)


Work = Callable[[Progress], Awaitable[dict[str, str]]]


class BackgroundTasks:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        # Strong references: the event loop keeps only weak ones to tasks.
        self._running: set[asyncio.Task[None]] = set()

    async def save(self, record: TaskRecord) -> None:
        record.updated_at = time.time()
        ttl = KEEP_FINISHED_SECONDS if record.finished else KEEP_RUNNING_SECONDS
        payload = json.dumps(asdict(record))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(_key(record.id), payload, ex=ttl)
            pipe.xadd(_events_key(record.id), {"record": payload}, maxlen=1000)
            pipe.expire(_events_key(record.id), ttl)
            await pipe.execute()

    async def get(self, task_id: str) -> TaskRecord | None:
        raw = await self.redis.get(_key(task_id))
        return None if raw is None else TaskRecord(**json.loads(raw))

    async def start(self, kind: str, p: Principal, work: Work) -> TaskRecord:
        record = TaskRecord(
            id=str(uuid.uuid4()), kind=kind, user_id=str(p.user_id), domain_name=p.domain_name
        )
        await self.save(record)
        task = asyncio.create_task(self._run(record, work))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return record

    async def _run(self, record: TaskRecord, work: Work) -> None:
        try:
            record.result = await work(Progress(self, record))
            record.status = "done"
        except BaiError as exc:
            record.status, record.errors = "failed", [exc.message]
        except asyncio.CancelledError:
            record.status, record.message = "cancelled", "the manager stopped"
            raise
        except Exception:
            log.exception("background task %s (%s) failed", record.id, record.kind)
            record.status, record.errors = "failed", ["internal error"]
        finally:
            record.finished_at = time.time()
            await asyncio.shield(self.save(record))

    async def watch(self, task_id: str) -> AsyncIterator[tuple[int, TaskRecord]]:
        """(event type, record) from the task's first event until its terminal one."""
        last = "0-0"
        while True:
            batch: Any = await self.redis.xread({_events_key(task_id): last}, block=2000, count=100)
            for _, entries in batch or ():
                for entry_id, fields in entries:
                    last = entry_id
                    record = TaskRecord(**json.loads(fields[b"record"]))
                    yield EVENT_OF_STATUS[record.status], record
                    if record.finished:
                        return
            if not batch and await self.get(task_id) is None:
                return

    async def stop(self) -> None:
        """Cancel the tasks this replica runs (shutdown); each ends CANCELLED."""
        for task in list(self._running):
            task.cancel()
        await self.wait()

    async def wait(self) -> None:
        """Let running tasks finish (tests, shutdown)."""
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
