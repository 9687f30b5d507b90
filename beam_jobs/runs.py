"""Run records: one Datastore entity per run, moved through its statuses.

A record says what ran (job, params, shard count, runner), when, how it
ended (error, counters) and where its output is. Status changes happen in a
transaction and only along `ALLOWED`, so a cancel racing a completion cannot
produce a record that is both. A local run whose process is gone is marked
`failed` the next time anyone reads it: a record never stays `started` for a
run nobody is running.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import socket
import time
from typing import Any, Callable, Optional

from google.cloud import datastore as ds

from beam_jobs import datastore
from beam_jobs import hooks
from beam_jobs import options
from beam_jobs import output
from beam_jobs import run_logs

NEW, QUEUED, STARTED = 'new', 'queued', 'started'
COMPLETED, FAILED, CANCELED = 'completed', 'failed', 'canceled'
TERMINAL = frozenset({COMPLETED, FAILED, CANCELED})
ALLOWED = {
    NEW: {QUEUED, CANCELED, FAILED},
    QUEUED: {STARTED, CANCELED, FAILED},
    STARTED: {COMPLETED, FAILED, CANCELED},
}
RECORD_KIND = 'BeamJobRun'
# Structured fields, stored as JSON text.
_JSON_FIELDS = ('params', 'counters', 'source', 'hook_errors', 'progress', 'gate')
# Large or free-form fields: never queried, so never indexed (and no 1,500
# byte limit on them).
_UNINDEXED = (*(f'{name}_json' for name in _JSON_FIELDS), 'error',
              'console_url', 'log_file')


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
    # Where the run read: {'type': 'datastore', 'project', 'namespace'} or
    # {'type': 'export', 'path', 'timestamp', 'entities': {kind: count}}.
    source: dict = dataclasses.field(default_factory=dict)
    # The legacy lifecycle hooks that raised: 'hook_name: error', in order.
    hook_errors: list = dataclasses.field(default_factory=list)
    # Where the process that ran it kept its log (on that machine).
    log_file: Optional[str] = None
    # What a running local run reports: see progress.py.
    progress: dict = dataclasses.field(default_factory=dict)
    queue_name: Optional[str] = None
    # The production gate: the approved rehearsal it found, or who skipped it
    # and why (rehearsal/gate.py); empty for runs it does not concern.
    gate: dict = dataclasses.field(default_factory=dict)

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
        for name in _JSON_FIELDS:
            values[f'{name}_json'] = json.dumps(values.pop(name), sort_keys=True)
        del values['run_id']
        entity.update(values)
        return entity

    @classmethod
    def from_entity(cls, entity: ds.Entity) -> 'RunRecord':
        values = dict(entity)
        for name in _JSON_FIELDS:
            text = values.pop(f'{name}_json', None)
            if text:
                values[name] = json.loads(text)
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
        # The run may have known how it ended but lost the Datastore before
        # it could say so: then that end, with its reason, is recorded.
        status, fields = run_logs.take_end(record.run_id) or (FAILED, {
            'error': f'Orphaned: the process that ran it (pid {record.pid} on '
                     f'{record.host}) ended without recording a result, so '
                     'the run was cut short (crash, kill, or a lost '
                     'Datastore). Rerun the job.'})
        try:
            ended = self.transition(record.run_id, status, **fields)
        except InvalidTransitionError:
            ended = self._load(record.run_id)
        run_logs.drop_end(record.run_id)
        return ended

    def transition(self, run_id: str, status: str, **fields: Any) -> RunRecord:
        """Move a run to `status` (and set `fields`) if that move is allowed.

        A move to an end calls the job's legacy hooks around it (hooks.py):
        the move happens once, so they run once, here.
        """
        hook_errors = []
        if status == CANCELED:
            current = self._load(run_id)
            if status in ALLOWED.get(current.status, ()):
                hook_errors.append(hooks.call(
                    current.job_name, '_pre_cancel_hook', run_id,
                    fields.get('error') or 'Canceled'))
        record = self._move(run_id, status, fields)
        if status in TERMINAL:
            hook_errors.append(hooks.after_end(record.job_name, run_id, status,
                                               record.error or 'Canceled'))
        hook_errors = [error for error in hook_errors if error]
        if hook_errors:
            record = self.update(run_id, hook_errors=record.hook_errors + hook_errors)
        return record

    def _move(self, run_id: str, status: str, fields: dict[str, Any]) -> RunRecord:
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

    def set_progress(self, run_id: str, progress: dict,
                     timeout: float = 5.0) -> None:
        """Note how far a started run got. Quick or not at all: no retries,
        and never over a status another process has moved on."""
        transaction = self._client.transaction()
        transaction.begin(retry=None, timeout=timeout)
        try:
            entity = self._client.get(self._client.key(RECORD_KIND, run_id),
                                      transaction=transaction, retry=None,
                                      timeout=timeout)
            if entity is None or entity.get('status') != STARTED:
                transaction.rollback()
                return
            record = RunRecord.from_entity(entity)
            record.progress = progress
            transaction.put(record.to_entity(self._client))
            transaction.commit(retry=None, timeout=timeout)
        except Exception:
            with contextlib.suppress(Exception):
                transaction.rollback()
            raise

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

    def unfinished(self, job_name: Optional[str] = None,
                   limit: Optional[int] = None) -> list[RunRecord]:
        """Runs that are new, queued or started, newest first (each brought
        up to date as `get` does, so orphans drop out)."""
        records = []
        for status in (NEW, QUEUED, STARTED):
            query = self._client.query(kind=RECORD_KIND)
            query.add_filter(filter=ds.query.PropertyFilter('status', '=', status))
            records += [RunRecord.from_entity(e) for e in query.fetch()]
        records = sorted((r for r in records if job_name in (None, r.job_name)),
                         key=lambda r: r.created_msec, reverse=True)
        current = [self.get(record.run_id) for record in records[:limit]]
        return [record for record in current if not record.is_terminal]

    def output(self, run_id: str) -> list[str]:
        """The run's stored output lines (empty while none is stored)."""
        return output.read(run_id, self.target) or []
