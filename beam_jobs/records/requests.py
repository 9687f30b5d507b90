"""Rehearsal requests: what a job's author asks the server jobs admin to rehearse.

The production guide keeps these in a spreadsheet: the author fills in a form
(the job, the jobs that verify it, the expected output, the params, notes and
a link), the admin rehearses it on a copy of production, approves it or
rejects it with a note. One `BeamJobRequest` entity per request, in the
team's shared records. Its state follows from what happened to it:

    open       nothing rehearsed yet
    rehearsed  rehearsed; `verdict` is its latest rehearsal's (passed, failed)
    approved   one of its rehearsals is approved
    rejected   an approver rejected it (who, when, why)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from beam_jobs import refusals
from beam_jobs.records import store as store_lib
from beam_jobs.records.store import now_msec

REQUEST_KIND = 'BeamJobRequest'
OPEN, REHEARSED, APPROVED, REJECTED = 'open', 'rehearsed', 'approved', 'rejected'
_INDEXED = ('job_name', 'created_msec')


class UnknownRequestError(refusals.NotFound):
    pass


@dataclasses.dataclass
class RequestRecord(store_lib.BodyRecord):
    KIND = REQUEST_KIND
    ID_FIELD = 'request_id'
    INDEXED = _INDEXED

    request_id: str
    job_name: str
    created_msec: int = 0
    requested_by: Optional[str] = None
    machine: Optional[str] = None
    verify: list[Any] = dataclasses.field(default_factory=list)
    # {'file': name given, 'text': its contents}: the expectation travels
    # with the request, to whichever machine rehearses it.
    expect: dict[str, Any] = dataclasses.field(default_factory=dict)
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    note: Optional[str] = None
    link: Optional[str] = None
    # [{'rehearsal_id', 'verdict', 'at_msec', 'by'}], oldest first.
    rehearsals: list[Any] = dataclasses.field(default_factory=list)
    approved_by: list[Any] = dataclasses.field(default_factory=list)
    # {'by', 'note', 'at_msec'} once an approver rejected it.
    rejected: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The jobs that must have run in production before this one (the
    # release plan's order; the gate checks it), oldest first.
    follows: list[Any] = dataclasses.field(default_factory=list)

    @property
    def verdict(self) -> Optional[str]:
        return self.rehearsals[-1]['verdict'] if self.rehearsals else None

    @property
    def state(self) -> str:
        if self.rejected:
            return REJECTED
        if self.approved_by:
            return APPROVED
        return REHEARSED if self.rehearsals else OPEN

    @property
    def state_text(self) -> str:
        """`open`, `rehearsed → passed`, `approved by sean`, `rejected by sean: why`."""
        if self.state == REJECTED:
            return f'rejected by {self.rejected["by"]}: {self.rejected["note"]}'
        if self.state == APPROVED:
            return f'approved by {", ".join(self.approved_by)}'
        if self.state == REHEARSED:
            return f'rehearsed → {self.verdict}'
        return OPEN


class RequestStore(store_lib.EntityStore):
    KIND = REQUEST_KIND
    NOUN = 'request'
    LIST_COMMAND = 'beam-jobs requests'

    def missing(self, name: str) -> LookupError:
        return UnknownRequestError(str(super().missing(name)))

    def create(self, job_name: str, **fields: Any) -> RequestRecord:
        record = RequestRecord(request_id=store_lib.new_id(f'request-{job_name}'),
                               job_name=job_name, created_msec=now_msec(), **fields)
        self._client.put(record.to_entity(self._client))
        return record

    def get(self, request_id: str) -> RequestRecord:
        return RequestRecord.from_entity(self._get_entity(request_id))

    def oldest_first(self, limit: Optional[int] = None,
                     job_name: Optional[str] = None) -> list[RequestRecord]:
        filters = {'job_name': job_name} if job_name else {}
        newest = [RequestRecord.from_entity(e)
                  for e in self._newest(None, 'created_msec', **filters)]
        return list(reversed(newest))[:limit]
