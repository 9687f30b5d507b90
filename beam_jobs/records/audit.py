"""The audit trail: every decision of the production gate, appended, never changed.

One `BeamJobGateDecision` entity per decision, in the team's shared records:
approved (which rehearsal, who approved it), skipped (who, why), refused
(why), off (require_rehearsal = false), with when, the machine and its user,
the job, the runner and project it was for.

The entries form a hash chain, so a removed or edited entry shows: each holds
its number (`seq`), the digest of the one before it and its own digest (of
everything it says), and one head entity holds the newest number and digest,
so even the newest entries cannot be cut off unseen. `verify()` walks the
chain and names the first entry removed or changed. Entries written before
the chain existed carry no number and are not checked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Callable, Optional

from google.api_core import exceptions as api_exceptions
from google.cloud import datastore

from beam_jobs.records import store as store_lib
from beam_jobs.records.store import now_msec

DECISION_KIND = 'BeamJobGateDecision'
APPROVED, SKIPPED, REFUSED, OFF = 'approved', 'skipped', 'refused', 'off'
# A revert of a production run: its after state is known (the before-images),
# so it needs no rehearsal; who and why are kept.
REVERT = 'revert'
_INDEXED = ('job_name', 'at_msec', 'decision', 'seq')
HEAD_KIND = 'BeamJobGateDecisionHead'
_HEAD = 'head'
_ATTEMPTS = 5


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
    # A named database the run was for (None: the default one).
    database: Optional[str] = None
    rehearsal_id: Optional[str] = None
    approved_by: list[Any] = dataclasses.field(default_factory=list)
    reason: Optional[str] = None      # why it was skipped, or refused
    seq: Optional[int] = None         # its place in the chain, from 1
    previous_digest: str = ''         # the digest of entry seq - 1
    digest: str = ''                  # of everything above
    # The release machine's SSH signature of `digest`, when it has a key.
    signature: Optional[str] = None

    def computed_digest(self) -> str:
        values = dataclasses.asdict(self)
        for field in ('digest', 'signature'):
            values.pop(field)
        if values['database'] is None:   # entries from before databases digest as then
            values.pop('database')
        text = json.dumps(values, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def _name(record: Optional[GateDecision]) -> str:
    return f'entry {record.seq}, {record.decision_id}' if record else 'the start'


class AuditStore(store_lib.EntityStore):
    KIND = DECISION_KIND
    NOUN = 'gate decision'
    LIST_COMMAND = 'beam-jobs audit'

    def append(self, job_name: str, decision: str,
               sign: Optional[Callable[[str], Optional[str]]] = None,
               **fields: Any) -> GateDecision:
        """Append a decision to the chain; `sign(digest)`, if given, returns
        the deciding machine's signature of it (or None)."""
        # Two gates deciding at once both read the same head: the second
        # commit is aborted, and it goes again on top of the first.
        for _ in range(_ATTEMPTS - 1):
            try:
                return self._append_once(job_name, decision, sign, fields)
            except (api_exceptions.Aborted, api_exceptions.Conflict):
                continue
        return self._append_once(job_name, decision, sign, fields)

    def _append_once(self, job_name: str, decision: str,
                     sign: Optional[Callable[[str], Optional[str]]],
                     fields: dict[str, Any]) -> GateDecision:
        head_key = self._client.key(HEAD_KIND, _HEAD)
        with self._client.transaction():
            head = self._client.get(head_key) or datastore.Entity(head_key)
            record = GateDecision(decision_id=store_lib.new_id(f'gate-{job_name}'),
                                  job_name=job_name, decision=decision,
                                  at_msec=now_msec(), seq=int(head.get('seq') or 0) + 1,
                                  previous_digest=head.get('digest') or '', **fields)
            record.digest = record.computed_digest()
            record.signature = sign(record.digest) if sign else None
            head.update({'seq': record.seq, 'digest': record.digest})
            self._client.put_multi([record.to_entity(self._client), head])
        return record

    def verify(self, signer: Optional[Callable[[str, str], str]] = None) -> Optional[str]:
        """None when the chain is whole, else a sentence naming the first
        entry removed or changed. `signer(digest, signature)`, if given,
        checks each signed entry's signature (raising ValueError to refuse)."""
        chained = [GateDecision.from_entity(entity) for entity in self._query().fetch()
                   if entity.get('seq')]
        chained.sort(key=lambda record: record.seq or 0)
        previous: Optional[GateDecision] = None
        for expected, record in enumerate(chained, start=1):
            if record.seq != expected:
                return (f'Audit entry {expected} was removed (the chain goes from '
                        f'{_name(previous)} to {record.decision_id}).')
            if record.computed_digest() != record.digest:
                return f'Audit entry {record.seq}, {record.decision_id}, was changed.'
            if signer is not None and record.signature:
                try:
                    signer(record.digest, record.signature)
                except ValueError as error:
                    return (f'Audit entry {record.seq}, {record.decision_id}: its '
                            f'signature does not verify ({error}).')
            if previous is not None and record.previous_digest != previous.digest:
                return (f'Audit entry {previous.seq}, {previous.decision_id}, was '
                        'changed (the entry after it holds another digest).')
            previous = record
        head = self._client.get(self._client.key(HEAD_KIND, _HEAD))
        newest = (previous.seq or 0) if previous else 0
        if head is not None and (head.get('seq') or 0) > newest:
            cut = (f'entry {head["seq"]} was' if head['seq'] == newest + 1
                   else f'entries {newest + 1} to {head["seq"]} were')
            return f'Audit {cut} removed (the newest left is {_name(previous)}).'
        if head is not None and previous is not None and head.get('digest') != previous.digest:
            return f'Audit entry {previous.seq}, {previous.decision_id}, was changed.'
        return None

    def newest_first(self, limit: Optional[int] = 100,
                     job_name: Optional[str] = None) -> list[GateDecision]:
        filters = {'job_name': job_name} if job_name else {}
        return [GateDecision.from_entity(e)
                for e in self._newest(limit, 'at_msec', **filters)]
