"""Run records: one Datastore entity per run, moved through its statuses.

A record says what ran (job, params, shard count, runner), when, how it
ended (error, counters) and where its output is. Status changes happen in a
transaction and only along `ALLOWED`, so a cancel racing a completion cannot
produce a record that is both. A local run whose process is gone is marked
`failed` the next time anyone reads it: a record never stays `started` for a
run nobody is running.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import socket
import time
from typing import Any, Callable, Optional

from google.cloud import datastore as ds

from beam_jobs import datastore
from beam_jobs import options
from beam_jobs import output

NEW, QUEUED, STARTED = 'new', 'queued', 'started'
COMPLETED, FAILED, CANCELED = 'completed', 'failed', 'canceled'
TERMINAL = frozenset({COMPLETED, FAILED, CANCELED})
ALLOWED = {
    NEW: {QUEUED, CANCELED, FAILED},
    QUEUED: {STARTED, CANCELED, FAILED},
    STARTED: {COMPLETED, FAILED, CANCELED},
}
RECORD_KIND = 'BeamJobRun'
# Large or free-form fields: never queried, so never indexed (and no 1,500
# byte limit on them).
_UNINDEXED = ('params_json', 'counters_json', 'error', 'console_url')


class UnknownRunError(LookupError):
    pass


class InvalidTransitionError(ValueError):
    pass


def now_msec() -> int:
    return int(time.time() * 1000)


def _process_start(pid: int) -> Optional[str]:
    """When a process started (Linux), so a reused pid is not mistaken for it."""
    try:
        with open(f'/proc/{pid}/stat', encoding='ascii') as stat:
            return stat.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@dataclasses.dataclass
class RunRecord:
    run_id: str
    job_name: str
    status: str = NEW
    created_msec: int = 0
    queued_msec: Optional[int] = None
    started_msec: Optional[int] = None
    finished_msec: Optional[int] = None
    shard_count: Optional[int] = None
    params: dict = dataclasses.field(default_factory=dict)
    runner: Optional[str] = None
    dataflow_job_id: Optional[str] = None
    console_url: Optional[str] = None
    # Where the Dataflow job runs, so refresh and cancel reach that service.
    dataflow_project: Optional[str] = None
    dataflow_region: Optional[str] = None
    dataflow_endpoint: Optional[str] = None
    error: Optional[str] = None
    counters: dict = dataclasses.field(default_factory=dict)
    error_count: int = 0
    output_line_count: Optional[int] = None
    host: Optional[str] = None
    pid: Optional[int] = None
    process_start: Optional[str] = None
    canceled_by: Optional[str] = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def is_local(self) -> bool:
        return (self.runner or options.LOCAL_RUNNER) in options.LOCAL_RUNNERS

    @property
    def seconds(self) -> Optional[float]:
        if not self.started_msec:
            return None
        end = self.finished_msec or now_msec()
        return (end - self.started_msec) / 1000

    def to_entity(self, client: ds.Client) -> ds.Entity:
        entity = ds.Entity(client.key(RECORD_KIND, self.run_id),
                           exclude_from_indexes=_UNINDEXED)
        values = dataclasses.asdict(self)
        values['params_json'] = json.dumps(values.pop('params'), sort_keys=True)
        values['counters_json'] = json.dumps(values.pop('counters'), sort_keys=True)
        del values['run_id']
        entity.update(values)
        return entity

    @classmethod
    def from_entity(cls, entity: ds.Entity) -> 'RunRecord':
        values = dict(entity)
        values['params'] = json.loads(values.pop('params_json', '{}') or '{}')
        values['counters'] = json.loads(values.pop('counters_json', '{}') or '{}')
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(run_id=entity.key.name,
                   **{k: v for k, v in values.items() if k in known})


# Runners other than the local ones register how to refresh a record from
# the service that runs it (the Dataflow module does); see `RunStore.get`.
REFRESHERS: dict[str, Callable[['RunStore', RunRecord], RunRecord]] = {}


class RunStore:
    """Run records of one Datastore target."""

    def __init__(self, target: datastore.Target):
        self.target = target
        self._client = datastore.client(target)

    @staticmethod
    def new_run_id(job_name: str) -> str:
        return f'{job_name}-{now_msec()}-{random.randint(0, 999_999):06d}'

    def create(self, job_name: str) -> RunRecord:
        record = RunRecord(run_id=self.new_run_id(job_name), job_name=job_name,
                           created_msec=now_msec())
        self._client.put(record.to_entity(self._client))
        return record

    def _load(self, run_id: str) -> RunRecord:
        entity = self._client.get(self._client.key(RECORD_KIND, run_id))
        if entity is None:
            raise UnknownRunError(
                f'No run {run_id!r} in project {self.target.project}'
                f'{" namespace " + self.target.namespace if self.target.namespace else ""}'
                ': check the id with `beam-jobs runs`.')
        return RunRecord.from_entity(entity)

    def get(self, run_id: str) -> RunRecord:
        """The record, brought up to date if its run is gone or remote."""
        record = self._load(run_id)
        if record.is_terminal:
            return record
        if record.is_local or not record.dataflow_job_id:
            # Nothing remote to ask yet: a submission whose process died
            # before it recorded the job id is an orphan like a local run.
            return self._end_if_orphaned(record)
        refresh = REFRESHERS.get(record.runner)
        return refresh(self, record) if refresh else record

    def _end_if_orphaned(self, record: RunRecord) -> RunRecord:
        if (record.status not in (QUEUED, STARTED) or not record.pid
                or record.host != socket.gethostname()):
            return record
        if record.pid and _process_start(record.pid) == record.process_start:
            return record
        try:
            return self.transition(
                record.run_id, FAILED,
                error=f'Orphaned: the process that ran it (pid {record.pid} on '
                      f'{record.host}) ended without recording a result, so '
                      'the run was cut short (crash, kill, or a lost '
                      'Datastore). Rerun the job.')
        except InvalidTransitionError:
            return self._load(record.run_id)

    def transition(self, run_id: str, status: str, **fields: Any) -> RunRecord:
        """Move a run to `status` (and set `fields`) if that move is allowed."""
        with self._client.transaction():
            record = self._load(run_id)
            if status not in ALLOWED.get(record.status, ()):
                raise InvalidTransitionError(
                    f'Run {run_id} is {record.status}; it cannot become {status}.')
            record.status = status
            if status in (QUEUED, STARTED):
                # Whoever queues or starts a run owns it until it ends; if
                # that process dies, readers see it (_end_if_orphaned).
                record.host = socket.gethostname()
                record.pid = os.getpid()
                record.process_start = _process_start(os.getpid())
            if status == QUEUED:
                record.queued_msec = now_msec()
            elif status == STARTED:
                record.started_msec = now_msec()
            elif status in TERMINAL:
                record.finished_msec = now_msec()
            for name, value in fields.items():
                setattr(record, name, value)
            self._client.put(record.to_entity(self._client))
        return record

    def update(self, run_id: str, **fields: Any) -> RunRecord:
        """Set fields without changing the status (e.g. a Dataflow job id)."""
        with self._client.transaction():
            record = self._load(run_id)
            for name, value in fields.items():
                setattr(record, name, value)
            self._client.put(record.to_entity(self._client))
        return record

    def recent(self, limit: int = 20,
               job_name: Optional[str] = None) -> list[RunRecord]:
        """The newest runs first (each brought up to date as `get` does)."""
        query = self._client.query(kind=RECORD_KIND)
        if job_name:
            query.add_filter(filter=ds.query.PropertyFilter('job_name', '=', job_name))
            records = sorted((RunRecord.from_entity(e) for e in query.fetch()),
                             key=lambda r: r.created_msec, reverse=True)[:limit]
        else:
            query.order = ['-created_msec']
            records = [RunRecord.from_entity(e) for e in query.fetch(limit=limit)]
        return [record if record.is_terminal else self.get(record.run_id)
                for record in records]

    def output(self, run_id: str) -> list[str]:
        """The run's stored output lines (empty while none is stored)."""
        return output.read(run_id, self.target) or []
