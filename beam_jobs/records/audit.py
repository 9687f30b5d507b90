"""The audit trail: every decision of the production gate, appended, never changed.

One `BeamJobGateDecision` entity per decision, in the team's shared records:
approved (which rehearsal, who approved it), skipped (who, why), refused
(why), off (require_rehearsal = false), with when, the machine and its user,
the job, the runner and project it was for.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from beam_jobs.records import store as store_lib
from beam_jobs.records.store import now_msec

DECISION_KIND = 'BeamJobGateDecision'
APPROVED, SKIPPED, REFUSED, OFF = 'approved', 'skipped', 'refused', 'off'
_INDEXED = ('job_name', 'at_msec', 'decision')


@dataclasses.dataclass
class GateDecision(store_lib.BodyRecord):
    KIND = DECISION_KIND
    ID_FIELD = 'decision_id'
    INDEXED = _INDEXED

    decision_id: str
    job_name: str
    decision: str
    at_msec: int = 0
    user: Optional[str] = None        # the machine's user who asked
    machine: Optional[str] = None
    runner: Optional[str] = None
    project: Optional[str] = None
    rehearsal_id: Optional[str] = None
    approved_by: list = dataclasses.field(default_factory=list)
    reason: Optional[str] = None      # why it was skipped, or refused


class AuditStore(store_lib.EntityStore):
    KIND = DECISION_KIND
    NOUN = 'gate decision'
    LIST_COMMAND = 'beam-jobs audit'

    def append(self, job_name: str, decision: str, **fields: Any) -> GateDecision:
        record = GateDecision(decision_id=store_lib.new_id(f'gate-{job_name}'),
                              job_name=job_name, decision=decision, at_msec=now_msec(),
                              **fields)
        self._client.put(record.to_entity(self._client))
        return record

    def newest_first(self, limit: Optional[int] = 100,
                     job_name: Optional[str] = None) -> list[GateDecision]:
        filters = {'job_name': job_name} if job_name else {}
        return [GateDecision.from_entity(e)
                for e in self._newest(limit, 'at_msec', **filters)]
