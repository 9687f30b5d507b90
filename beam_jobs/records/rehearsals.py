"""Rehearsal records: what a rehearsal proved, and who signed it off.

One `BeamJobRehearsal` entity per rehearsal, in the Datastore that keeps the
local run records (a rehearsal runs locally, over an export). It holds
everything the production guide asks a coordinator to check: the job and its
code version, the export it ran on, the runs, each check, the failed items,
the writes, the durations, the verdict with its reasons, the job's own notes
for the coordinator, and the approvals. Only a `passed` rehearsal can be
approved; an approval is what the production gate (gate.py) looks for.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional

from google.cloud import datastore as ds

from beam_jobs.records import store as store_lib
from beam_jobs.records.store import now_msec

REHEARSAL_KIND = 'BeamJobRehearsal'
RUNNING, PASSED, FAILED = 'running', 'passed', 'failed'
# Everything but what is queried is kept as one JSON text, never indexed.
_INDEXED = ('job_name', 'created_msec', 'verdict', 'source_sha256')


class UnknownRehearsalError(LookupError):
    pass


class ApprovalError(ValueError):
    """An approval the record cannot take (a rehearsal that did not pass)."""


@dataclasses.dataclass
class RehearsalRecord:
    rehearsal_id: str
    job_name: str
    created_msec: int = 0
    # 'running' until the rehearsal ends, then 'passed' or 'failed'.
    verdict: str = RUNNING
    reasons: list = dataclasses.field(default_factory=list)
    # {'commit': str | None, 'dirty': bool, 'source_file': str,
    #  'source_sha256': str}: see code_version.py.
    code_version: dict = dataclasses.field(default_factory=dict)
    # {'path', 'timestamp', 'entities': {kind: count}}
    export: dict = dataclasses.field(default_factory=dict)
    params: dict = dataclasses.field(default_factory=dict)
    shard_count: Optional[int] = None
    run_id: Optional[str] = None
    # [{'job', 'run_id', 'status', 'passed', 'error_lines', 'reason'}]
    verify: list = dataclasses.field(default_factory=list)
    # {'file', 'passed', 'missing': [...], 'unexpected': [...]} or {}
    expect: dict = dataclasses.field(default_factory=dict)
    # [{'step', 'kind', 'key', 'reason', 'line'}]
    failed_items: list = dataclasses.field(default_factory=list)
    # {'put': {kind: n}, 'delete': {kind: n}}
    writes: dict = dataclasses.field(default_factory=dict)
    # {'job': s, 'verify': {job: s}, 'total': s}
    durations: dict = dataclasses.field(default_factory=dict)
    after_state: Optional[str] = None
    coordinator_notes: Optional[str] = None
    # [{'user', 'note', 'at_msec'}]
    approvals: list = dataclasses.field(default_factory=list)

    @property
    def source_sha256(self) -> Optional[str]:
        return self.code_version.get('source_sha256')

    @property
    def is_approved(self) -> bool:
        return self.verdict == PASSED and bool(self.approvals)

    def to_entity(self, client: ds.Client) -> ds.Entity:
        values = dataclasses.asdict(self)
        del values['rehearsal_id']
        entity = ds.Entity(client.key(REHEARSAL_KIND, self.rehearsal_id),
                           exclude_from_indexes=('body_json',))
        entity.update({name: values[name] for name in _INDEXED if name in values})
        entity['source_sha256'] = self.source_sha256
        entity['body_json'] = json.dumps(
            {k: v for k, v in values.items() if k not in _INDEXED}, sort_keys=True)
        return entity

    @classmethod
    def from_entity(cls, entity: ds.Entity) -> 'RehearsalRecord':
        values = json.loads(entity.get('body_json') or '{}')
        values.update({name: entity.get(name) for name in _INDEXED
                       if name != 'source_sha256'})
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(rehearsal_id=entity.key.name,
                   **{k: v for k, v in values.items() if k in known})


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

    def recent(self, limit: int = 20,
               job_name: Optional[str] = None) -> list[RehearsalRecord]:
        """The newest rehearsals first."""
        filters = {'job_name': job_name} if job_name else {}
        return [RehearsalRecord.from_entity(entity)
                for entity in self._newest(limit, 'created_msec', **filters)]

    def approve(self, rehearsal_id: str, user: str,
                note: Optional[str] = None) -> RehearsalRecord:
        """Record who approved a passed rehearsal, when, and why."""
        if not user or not user.strip():
            raise ApprovalError('An approval needs the approver\'s name: pass '
                                '--user NAME.')
        with self._client.transaction():
            record = self.get(rehearsal_id)
            if record.verdict != PASSED:
                raise ApprovalError(
                    f'Rehearsal {rehearsal_id} {record.verdict}'
                    f'{": " + "; ".join(record.reasons) if record.reasons else ""}'
                    ': only a passed rehearsal can be approved. Fix the job and '
                    'rehearse it again.')
            record.approvals.append({'user': user.strip(), 'note': note or '',
                                     'at_msec': now_msec()})
            self.save(record)
        return record

    def approved_for(self, job_name: str,
                     source_sha256: str) -> Optional[RehearsalRecord]:
        """The newest approved rehearsal of this job at this code version."""
        candidates = [RehearsalRecord.from_entity(entity) for entity in
                      self._newest(None, 'created_msec', source_sha256=source_sha256)]
        return next((r for r in candidates
                     if r.job_name == job_name and r.is_approved), None)
