"""Run records: one Datastore entity per run, moved through its statuses.

A record says what ran (job, params, shard count, runner), when, how it
ended (error, counters, output counts) and where its output is; its
`dataflow` part (DataflowRun) what a run on Dataflow adds (the job, its
estimate and budget, how it was last seen). Both are stored flat, under the
names records have always had, so records of any age read alike. Status
changes happen in a transaction and only along `ALLOWED`, so a cancel racing
a completion cannot produce a record that is both.

The store only stores: it never asks Dataflow about a run, never checks
whether a run's process lives, and never calls a job's hooks. Bringing a
record up to date and ending a run are the lifecycle's (beam_jobs.lifecycle).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
from typing import Any, Callable, Optional

from google.api_core import exceptions as api_exceptions
from google.cloud import datastore as ds

from beam_jobs import options
from beam_jobs import output_format
from beam_jobs import refusals
from beam_jobs.io import stored_output
from beam_jobs.records import store as store_lib
from beam_jobs.records.store import now_msec  # noqa: F401  (the records' clock)

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
_JSON_FIELDS = ('params', 'counters', 'source', 'hook_errors', 'progress', 'gate',
                'stages', 'usage', 'failure_messages', 'backup', 'estimate', 'budget')
# Large or free-form fields: never queried, so never indexed (and no 1,500
# byte limit on them).
_UNINDEXED = (*(f'{name}_json' for name in _JSON_FIELDS), 'error',
              'console_url', 'log_file', 'follow_error')


class UnknownRunError(refusals.NotFound):
    pass


class InvalidTransitionError(refusals.Conflict):
    pass


def process_start(pid: int) -> Optional[str]:
    """When a process started (Linux), so a reused pid is not mistaken for it."""
    try:
        with open(f'/proc/{pid}/stat', encoding='ascii') as stat:
            return stat.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@dataclasses.dataclass
class DataflowRun:
    """What a run on Dataflow adds to its record (empty for a local run).

    The job and where it runs, so following and canceling reach that
    service; its estimate and guardrails, made before it was submitted
    (lifecycle/estimate.py: entities, CPU per entity and who measured it,
    vCPU hours, wall time, price, assumptions, warnings; `budget`:
    {'max_num_workers', 'flexrs', 'max_cost_usd' or None, 'rates'}: the
    watch cancels it once the cost of its reported resources, at those
    rates, passes max_cost_usd); and the job as its backend last saw it
    (lifecycle/dataflow.py): whether the run's counters are the attempted
    values (while it runs) rather than the committed ones, its stages, the
    first error messages of a failed job, trimmed ([{'exception', 'step',
    'item', 'at_msec'}]), when it was last asked, and the error the service
    gave then, if it did.
    """

    job_id: Optional[str] = None
    console_url: Optional[str] = None
    project: Optional[str] = None
    region: Optional[str] = None
    endpoint: Optional[str] = None
    estimate: dict[str, Any] = dataclasses.field(default_factory=dict)
    budget: dict[str, Any] = dataclasses.field(default_factory=dict)
    counters_attempted: bool = False
    stages: list[Any] = dataclasses.field(default_factory=list)
    failure_messages: list[Any] = dataclasses.field(default_factory=list)
    followed_msec: Optional[int] = None
    follow_error: Optional[str] = None


# A Dataflow run's fields as a record is stored, flat beside every run's
# (the names records have always been stored under): stored name -> field.
DATAFLOW_STORED = {
    'dataflow_job_id': 'job_id', 'console_url': 'console_url',
    'dataflow_project': 'project', 'dataflow_region': 'region',
    'dataflow_endpoint': 'endpoint', 'estimate': 'estimate', 'budget': 'budget',
    'counters_attempted': 'counters_attempted', 'stages': 'stages',
    'failure_messages': 'failure_messages', 'followed_msec': 'followed_msec',
    'follow_error': 'follow_error',
}


@dataclasses.dataclass
class RunRecord:
    """What every run has; a Dataflow run adds `dataflow`.

    Stored flat, as records always were (`stored_fields`): a record stored
    before the split reads the same, and so does one an older version reads.
    """

    run_id: str
    job_name: str
    status: str = NEW
    created_msec: int = 0
    queued_msec: Optional[int] = None
    started_msec: Optional[int] = None
    finished_msec: Optional[int] = None
    shard_count: Optional[int] = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    runner: Optional[str] = None
    error: Optional[str] = None
    counters: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Failed items (the framework's ERROR lines), and the job's own error
    # lines (output_format.py): both counted from the stored report.
    error_count: int = 0
    error_line_count: int = 0
    output_line_count: Optional[int] = None
    # The process that queued and started it (on Dataflow: that submitted it).
    host: Optional[str] = None
    pid: Optional[int] = None
    process_start: Optional[str] = None
    canceled_by: Optional[str] = None
    # Where the run read: {'type': 'datastore', 'project', 'namespace'} or
    # {'type': 'export', 'path', 'timestamp', 'entities': {kind: count}}.
    source: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The legacy lifecycle hooks that raised: 'hook_name: error', in order.
    hook_errors: list[Any] = dataclasses.field(default_factory=list)
    # Where the process that ran it kept its log (on that machine).
    log_file: Optional[str] = None
    # What a running local run reports: see progress.py.
    progress: dict[str, Any] = dataclasses.field(default_factory=dict)
    queue_name: Optional[str] = None
    # The production gate: the approved rehearsal it found, or who skipped it
    # and why (lifecycle/gate.py); empty for runs it does not concern.
    gate: dict[str, Any] = dataclasses.field(default_factory=dict)
    # What it used: on Dataflow its cost and size ({'vcpu_seconds',
    # 'memory_gb_seconds', 'shuffle_gb', 'cost_usd'} as reported while it
    # runs, with 'workers' and 'elapsed_seconds' once ended); a local run's
    # {'cpu_seconds', 'elapsed_seconds'}, what its process used.
    usage: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The before-images of what it wrote (io/before_images.py): while it
    # runs {'location', 'state': 'keeping'}; once ended, the manifest's
    # summary ({'location', 'kinds', 'writes', 'files', 'export', 'state':
    # 'kept'}); {'state': 'off', 'reason'} for a run with --no-backup; empty
    # for runs that write no Datastore.
    backup: dict[str, Any] = dataclasses.field(default_factory=dict)
    # A revert (`beam-jobs revert`) names the run it takes back; a retry
    # (`run --retry-failed`) the run it finishes.
    revert_of: Optional[str] = None
    retry_of: Optional[str] = None
    # The rehearsal it is a run of (its job's, or a verify job's).
    rehearsal_id: Optional[str] = None
    dataflow: DataflowRun = dataclasses.field(default_factory=DataflowRun)

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

    def set(self, name: str, value: Any) -> None:
        """Set a field by its stored name (what `transition` and `update`
        take): a Dataflow run's go to `dataflow`."""
        if name in DATAFLOW_STORED:
            setattr(self.dataflow, DATAFLOW_STORED[name], value)
        else:
            setattr(self, name, value)

    def stored_fields(self) -> dict[str, Any]:
        """The record as it is stored and shown (the console's JSON): every
        field under its stored name, one flat mapping."""
        values = dataclasses.asdict(self)
        dataflow = values.pop('dataflow')
        values.update({stored: dataflow[name] for stored, name in DATAFLOW_STORED.items()})
        return values

    def to_entity(self, client: ds.Client) -> ds.Entity:
        entity = ds.Entity(client.key(RECORD_KIND, self.run_id),
                           exclude_from_indexes=_UNINDEXED)
        values = self.stored_fields()
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
        record = cls(run_id=entity.key.name, job_name=values.get('job_name', ''))
        for name, value in values.items():
            if name in DATAFLOW_STORED or name in _COMMON_FIELDS:
                record.set(name, value)
        return record


_COMMON_FIELDS = frozenset(field.name for field in dataclasses.fields(RunRecord)
                           if field.name != 'dataflow')


class RunStore(store_lib.EntityStore):
    """Run records of one Datastore target."""

    KIND = RECORD_KIND
    NOUN = 'run'
    LIST_COMMAND = 'beam-jobs runs'

    def missing(self, name: str) -> LookupError:
        return UnknownRunError(str(super().missing(name)))

    @staticmethod
    def new_run_id(job_name: str) -> str:
        return store_lib.new_id(job_name)

    def create(self, job_name: str) -> RunRecord:
        record = RunRecord(run_id=self.new_run_id(job_name), job_name=job_name,
                           created_msec=now_msec())
        self._client.put(record.to_entity(self._client))
        return record

    def get(self, run_id: str) -> RunRecord:
        """The record as stored (lifecycle.current brings it up to date)."""
        return RunRecord.from_entity(self._get_entity(run_id))

    def transition(self, run_id: str, status: str, *,
                   fields_from: Optional[Callable[[RunRecord], dict[str, Any]]] = None,
                   **fields: Any) -> RunRecord:
        """Move a run to `status` (and set `fields`) if that move is allowed;
        `fields_from(record)` adds fields computed from the record as it is
        inside the transaction. Raises InvalidTransitionError otherwise."""
        with self._client.transaction():
            record = self.get(run_id)
            if status not in ALLOWED.get(record.status, ()):
                raise InvalidTransitionError(
                    f'Run {run_id} is {record.status}; it cannot become {status}.')
            if fields_from is not None:
                fields = {**fields_from(record), **fields}
            record.status = status
            if status in (QUEUED, STARTED):
                # Whoever queues or starts a run owns it until it ends; if
                # that process dies, readers see it (lifecycle/local.py).
                record.host = socket.gethostname()
                record.pid = os.getpid()
                record.process_start = process_start(os.getpid())
            if status == QUEUED:
                record.queued_msec = now_msec()
            elif status == STARTED:
                record.started_msec = now_msec()
            elif status in TERMINAL:
                record.finished_msec = now_msec()
            for name, value in fields.items():
                record.set(name, value)
            self._client.put(record.to_entity(self._client))
        return record

    def update(self, run_id: str, **fields: Any) -> RunRecord:
        """Set fields without changing the status (e.g. a Dataflow job id)."""
        with self._client.transaction():
            record = self.get(run_id)
            for name, value in fields.items():
                record.set(name, value)
            self._client.put(record.to_entity(self._client))
        return record

    def claim_follow(self, run_id: str, every_msec: int) -> Optional[RunRecord]:
        """Take the right to ask the service about a started run now, unless
        someone took it less than `every_msec` ago: then None, and the caller
        shows the record as it is. Shared by every reader of the record, so
        ten readers make one request."""
        now = now_msec()
        try:
            with self._client.transaction():
                record = self.get(run_id)
                followed = record.dataflow.followed_msec
                if record.status != STARTED or (followed and now - followed < every_msec):
                    return None
                record.dataflow.followed_msec = now
                self._client.put(record.to_entity(self._client))
        except api_exceptions.Aborted:
            return None     # another reader claimed it at the same moment
        return record

    def set_progress(self, run_id: str, progress: dict[str, Any],
                     timeout: float = 5.0) -> None:
        """Note how far a started run got. Quick or not at all: no retries,
        and never over a status another process has moved on."""
        transaction = self._client.transaction()
        transaction.begin(retry=None, timeout=timeout)
        try:
            entity = self._client.get(self._key(run_id), transaction=transaction,
                                      retry=None, timeout=timeout)
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
        """The newest runs first, as stored."""
        filters = {'job_name': job_name} if job_name else {}
        return [RunRecord.from_entity(entity)
                for entity in self._newest(limit, 'created_msec', **filters)]

    def unfinished(self, job_name: Optional[str] = None,
                   limit: Optional[int] = None) -> list[RunRecord]:
        """Runs stored as new, queued or started, newest first."""
        records = []
        for status in (NEW, QUEUED, STARTED):
            records += [RunRecord.from_entity(e) for e in self._query(status=status).fetch()]
        records = sorted((r for r in records if job_name in (None, r.job_name)),
                         key=lambda r: r.created_msec, reverse=True)
        return records[:limit]

    def stored_output(self, run_id: str) -> Optional[output_format.StoredOutput]:
        """The run's stored report with each line's kind (None: none stored)."""
        return stored_output.read(run_id, self.target)

    def output(self, run_id: str) -> list[str]:
        """The run's stored output lines (empty while none is stored)."""
        stored = self.stored_output(run_id)
        return stored.lines if stored else []

    def output_counts(self, run_id: str) -> Optional[output_format.Counts]:
        return stored_output.read_counts(run_id, self.target)
