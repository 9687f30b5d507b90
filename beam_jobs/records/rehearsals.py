"""Rehearsal records: what a rehearsal proved, and who signed it off.

One `BeamJobRehearsal` entity per rehearsal, where the team's sign-off lives
(the shared records when `records_project` is set, else the local records). It holds
everything the production guide asks a coordinator to check: the job and its
code version, the export it ran on, the runs, each check, the failed items,
the writes, the durations, the verdict with its reasons, the job's own notes
for the coordinator, and the approvals. Only a `passed` rehearsal can be
approved; an approval is what the production gate (gate.py) looks for.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any, Optional

from google.cloud import datastore as ds

from beam_jobs import refusals
from beam_jobs.records import store as store_lib
from beam_jobs.records.store import now_msec

REHEARSAL_KIND = 'BeamJobRehearsal'
RUNNING, PASSED, FAILED = 'running', 'passed', 'failed'
# Everything but what is queried is kept as one JSON text, never indexed.
_INDEXED = ('job_name', 'created_msec', 'verdict')


class UnknownRehearsalError(refusals.NotFound):
    pass


class ApprovalError(refusals.Conflict):
    """An approval the record cannot take (a rehearsal that did not pass)."""


@dataclasses.dataclass
class RehearsalRecord(store_lib.BodyRecord):
    KIND = REHEARSAL_KIND
    ID_FIELD = 'rehearsal_id'
    INDEXED = _INDEXED

    rehearsal_id: str
    job_name: str
    created_msec: int = 0
    # 'running' until the rehearsal ends, then 'passed' or 'failed'.
    verdict: str = RUNNING
    reasons: list[Any] = dataclasses.field(default_factory=list)
    # {'commit': str | None, 'dirty': bool, 'source_file': str,
    #  'source_sha256': str, 'fingerprint': {...}}: lifecycle/code_version.py.
    code_version: dict[str, Any] = dataclasses.field(default_factory=dict)
    # {'path', 'timestamp', 'entities': {kind: count}}
    export: dict[str, Any] = dataclasses.field(default_factory=dict)
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    shard_count: Optional[int] = None
    run_id: Optional[str] = None
    # [{'job', 'run_id', 'status', 'passed', 'error_lines', 'reason'}]
    verify: list[Any] = dataclasses.field(default_factory=list)
    # {'file', 'passed', 'missing': [...], 'unexpected': [...]} or {}
    expect: dict[str, Any] = dataclasses.field(default_factory=dict)
    # [{'step', 'kind', 'key', 'reason', 'line'}]
    failed_items: list[Any] = dataclasses.field(default_factory=list)
    # {'put': {kind: n}, 'delete': {kind: n}}
    writes: dict[str, Any] = dataclasses.field(default_factory=dict)
    # {'job': s, 'verify': {job: s}, 'total': s}
    durations: dict[str, Any] = dataclasses.field(default_factory=dict)
    after_state: Optional[str] = None
    coordinator_notes: Optional[str] = None
    # [{'user', 'note', 'at_msec', 'approvers': [names] or None (unset),
    #   'machine', 'via': 'cli' | 'console', and in signed mode 'statement',
    #   'signature', 'target' (lifecycle/approval_signatures.py),
    #   'withdrawn': {'by', 'reason', 'at_msec'} once withdrawn}]
    approvals: list[Any] = dataclasses.field(default_factory=list)
    # The request it fulfils, if any (records/requests.py); who ran it.
    request_id: Optional[str] = None
    rehearsed_by: Optional[str] = None
    machine: Optional[str] = None
    # Where its runs ran: None on this machine, or 'DataflowRunner'.
    runner: Optional[str] = None
    # What any reader needs to take a running rehearsal on from where it
    # stands: rehearsal/state.py's RehearsalState, the one reader and writer
    # of this field ({'verify': [job names], 'expected_text', 'expect_file',
    # 'pipeline_args', 'namespace', 'base', 'after_dir'}).
    resume: dict[str, Any] = dataclasses.field(default_factory=dict)
    # {'by', 'at_msec'} once someone canceled it.
    canceled: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The jobs whose writes it was rehearsed after, oldest first: those of the
    # after states it read ({'job', 'rehearsal_id'}), and those its request
    # names ({'job'}). The gate lets it run only once they have run.
    follows: list[Any] = dataclasses.field(default_factory=list)

    @property
    def followed_jobs(self) -> list[str]:
        return list(dict.fromkeys(item['job'] for item in self.follows if item.get('job')))
    # What the job's run measured, for estimates of larger runs
    # (lifecycle/estimate.py): {'run_id', 'runner', 'cpu_seconds', 'entities'}.
    measured: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def source_sha256(self) -> Optional[str]:
        return self.code_version.get('source_sha256')

    @property
    def fingerprint(self) -> dict[str, Any]:
        return self.code_version.get('fingerprint') or {}

    @property
    def standing_approvals(self) -> list[Any]:
        """Approvals not withdrawn."""
        return [approval for approval in self.approvals if not approval.get('withdrawn')]

    @property
    def is_running(self) -> bool:
        return self.verdict == RUNNING

    @property
    def on_dataflow(self) -> bool:
        return bool(self.runner)

    @property
    def in_flight_run(self) -> Optional[str]:
        """The run a running rehearsal waits for: its job's, until that has
        ended, then each verify job's in turn (None between two steps)."""
        if not self.is_running:
            return None
        if 'job' not in self.durations:
            return self.run_id
        return next((entry.get('run_id') for entry in self.verify
                     if entry.get('passed') is None), None)

    @property
    def is_approved(self) -> bool:
        return self.verdict == PASSED and bool(self.standing_approvals)

    def indexed_extras(self) -> dict[str, Any]:
        return {'source_sha256': self.source_sha256}


def _when(msec: int) -> str:
    return datetime.datetime.fromtimestamp(msec / 1000, datetime.timezone.utc).strftime(
        '%Y-%m-%d %H:%M UTC')


class RehearsalStore(store_lib.EntityStore):
    """Rehearsal records of one Datastore target."""

    KIND = REHEARSAL_KIND
    NOUN = 'rehearsal'
    LIST_COMMAND = 'beam-jobs rehearsals'

    def missing(self, name: str) -> LookupError:
        return UnknownRehearsalError(str(super().missing(name)))

    @staticmethod
    def new_id(job_name: str) -> str:
        return store_lib.new_id(f'rehearsal-{job_name}')

    def create(self, job_name: str, rehearsal_id: Optional[str] = None,
               **fields: Any) -> RehearsalRecord:
        record = RehearsalRecord(rehearsal_id=rehearsal_id or self.new_id(job_name),
                                 job_name=job_name, created_msec=now_msec(),
                                 **fields)
        return self.save(record)

    def save(self, record: RehearsalRecord) -> RehearsalRecord:
        self._client.put(record.to_entity(self._client))
        return record

    def get(self, rehearsal_id: str) -> RehearsalRecord:
        return RehearsalRecord.from_entity(self._get_entity(rehearsal_id))

    def recent(self, limit: Optional[int] = 20,
               job_name: Optional[str] = None) -> list[RehearsalRecord]:
        """The newest rehearsals first."""
        filters = {'job_name': job_name} if job_name else {}
        return [RehearsalRecord.from_entity(entity)
                for entity in self._newest(limit, 'created_msec', **filters)]

    def approve(self, rehearsal_id: str, user: str, note: Optional[str] = None,
                **facts: Any) -> RehearsalRecord:
        """Record who approved a passed rehearsal, when, and why (`facts`:
        what else the approval keeps, such as the approvers configured)."""
        if not user or not user.strip():
            raise ApprovalError('An approval needs the approver\'s name.')

        def approve_it(record: RehearsalRecord) -> None:
            mine = [approval for approval in record.standing_approvals
                    if approval['user'] == user.strip()]
            if mine:
                raise ApprovalError(
                    f'{user.strip()} already approved rehearsal {rehearsal_id} (at '
                    f'{_when(mine[0]["at_msec"])}): one approval per person counts; '
                    'withdraw it first to approve again.')
            if record.verdict != PASSED:
                raise ApprovalError(
                    f'Rehearsal {rehearsal_id} {record.verdict}'
                    f'{": " + "; ".join(record.reasons) if record.reasons else ""}'
                    ': only a passed rehearsal can be approved. Fix the job and '
                    'rehearse it again.')
            record.approvals.append({'user': user.strip(), 'note': note or '',
                                     'at_msec': now_msec(), **facts})
        changed: RehearsalRecord = self.change(rehearsal_id, approve_it)
        return changed

    def withdraw(self, rehearsal_id: str, user: str, reason: str,
                 **facts: Any) -> RehearsalRecord:
        """Withdraw the standing approvals of a rehearsal (recorded: who, why;
        `facts`: what else, such as its signature)."""
        def withdraw_them(record: RehearsalRecord) -> None:
            standing = record.standing_approvals
            if not standing:
                raise ApprovalError(f'Rehearsal {rehearsal_id} has no approval to '
                                    'withdraw.')
            for approval in standing:
                approval['withdrawn'] = {'by': user, 'reason': reason,
                                         'at_msec': now_msec(), **facts}
        changed: RehearsalRecord = self.change(rehearsal_id, withdraw_them)
        return changed

    def approved_of(self, job_name: str) -> list[RehearsalRecord]:
        """The job's approved rehearsals, newest first."""
        return [record for record in self.recent(None, job_name) if record.is_approved]
