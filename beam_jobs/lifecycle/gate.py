"""The production gate: no job changes production data unrehearsed.

A run in production (the Dataflow runner, or any Datastore that is not an
emulator) whose writes reach the Datastore passes only with an approved
rehearsal that covers it:

- the rehearsal's fingerprint (code_version.py: the job class's source, the
  project modules it imports, its params) is the run's;
- its export is at most `rehearsal_max_age_days` old (default 30), counted
  from the export's own timestamp;
- with `approvers` set, an approval by one of them stands (not withdrawn);
- with `allowed_signers` set, that approval is signed by the approver's key
  over this job, these params and this target (approval_signatures.py), and
  the principals of that file are the approvers.

Runs that cannot change data are let through: dry runs, and runs over an
export. A revert (`beam-jobs revert`) needs no rehearsal, since what it writes
is the before-images a run kept, but it is audited with who and why; a run
with `--no-backup` is audited saying so. Local runs on the emulator are never gated. `--skip-rehearsal --user
NAME --reason TEXT` overrides; `require_rehearsal = false` turns the gate off.
Every decision (approved, skipped, refused, off) is appended to the audit
trail in the team's shared records (records/audit.py, a hash chain), with the
time and the machine's user, signed with the machine's key when it has one
(`signing_key`). Rehearsals and approvals are read from the same records, so
every machine's gate sees the team's sign-off.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from typing import Callable, Optional

from beam_jobs import config
from beam_jobs import identity
from beam_jobs import job_class as job_class_lib
from beam_jobs import target as target_lib
from beam_jobs.lifecycle import approval_signatures as signatures
from beam_jobs.lifecycle import code_version
from beam_jobs.records import audit as audit_lib
from beam_jobs.records.rehearsals import RehearsalRecord, RehearsalStore

DEFAULT_MAX_AGE_DAYS = 30


class GateError(ValueError):
    """A production run refused for want of an approved rehearsal."""


@dataclasses.dataclass(frozen=True)
class Skip:
    user: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Revert:
    """A revert of run `run_id`, asked for by `user` for `reason`."""
    run_id: str
    user: str
    reason: Optional[str]


def _flag(name: str, default: bool) -> bool:
    value = config.get(name, default)
    if isinstance(value, str):
        return value.strip().lower() not in ('false', '0', 'no', 'off')
    return bool(value)


class _NoBackupAudit:
    """An audit store whose entries say the run keeps no before-images."""

    def __init__(self, store: audit_lib.AuditStore):
        self._store = store

    def append(self, job_name: str, decision: str, reason: Optional[str] = None,
               **fields):
        said = 'no before-images kept (--no-backup): it cannot be reverted'
        return self._store.append(job_name, decision,
                                  reason=f'{reason}; {said}' if reason else said, **fields)


def required() -> bool:
    return _flag('require_rehearsal', True)


def approvers() -> Optional[list[str]]:
    """The named approvers (`approvers` setting, BEAM_JOBS_APPROVERS comma-
    separated), or the principals of `allowed_signers` when approvals are
    signed; None when unset: then anyone may approve."""
    if signatures.signed_mode():
        return signatures.principals()
    value = config.get('approvers')
    if value in (None, '', []):
        return None
    names = value.split(',') if isinstance(value, str) else [str(v) for v in value]
    return [name.strip() for name in names if name.strip()] or None


def max_age_days() -> float:
    return float(config.get('rehearsal_max_age_days', DEFAULT_MAX_AGE_DAYS))


def is_production(is_dataflow: bool) -> bool:
    """Dataflow, or a real Datastore: with no emulator set, a local run uses
    the project's own emulator unless BEAM_JOBS_REAL_DATASTORE says otherwise
    (emulator.ensure_environment), and that is not production."""
    return is_dataflow or (not target_lib.is_emulator()
                           and bool(os.environ.get('BEAM_JOBS_REAL_DATASTORE')))


def export_age_days(export: dict, now: Optional[datetime.datetime] = None) -> Optional[float]:
    """Days since the export a rehearsal ran on was taken (None: unknown)."""
    stamp = str((export or {}).get('timestamp') or '')
    try:
        taken = datetime.datetime.strptime(stamp.split('_')[0], '%Y-%m-%dT%H:%M:%S')
    except ValueError:
        return None
    taken = taken.replace(tzinfo=datetime.timezone.utc)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return (now - taken).total_seconds() / 86400


def _standing(record: RehearsalRecord, names: Optional[list[str]]) -> list[dict]:
    """Approvals that count: not withdrawn, and by a named approver if any."""
    return [approval for approval in record.standing_approvals
            if names is None or approval['user'] in names]


def _why_uncounted(record: RehearsalRecord, approval: dict, project: Optional[str],
                   namespace: Optional[str]) -> Optional[str]:
    """None when a standing approval counts for a run against this target:
    always in unsigned mode; in signed mode, when its signature covers this
    target, or it was made in the console where console_approvals = true."""
    if not signatures.signed_mode():
        return None
    if approval.get('via') == 'console':
        return None if signatures.console_approvals() else (
            f'the approval by {approval["user"]} was made in the console, and '
            'console_approvals is off')
    return signatures.covers(record, approval, project, namespace)


def _counting(record: RehearsalRecord, names: Optional[list[str]],
              project: Optional[str], namespace: Optional[str]) -> tuple[list, list]:
    """The standing approvals that count for this run, and why the others do not."""
    counting, why = [], []
    for approval in _standing(record, names):
        reason = _why_uncounted(record, approval, project, namespace)
        if reason is None:
            counting.append(approval)
        else:
            why.append(reason)
    return counting, why


def _why_not(record: RehearsalRecord, fingerprint: dict, oldest: float,
             names: Optional[list[str]] = None, project: Optional[str] = None,
             namespace: Optional[str] = None) -> list[str]:
    if not record.fingerprint:
        return ['it was rehearsed before beam-jobs kept fingerprints']
    why = code_version.differences(record.fingerprint, fingerprint)
    age = export_age_days(record.export)
    if age is None:
        why.append('the time its export was taken is unknown')
    elif age > oldest:
        why.append(f'its export was taken {age:.0f} days ago, more than '
                   f'rehearsal_max_age_days = {oldest:g}')
    if why:
        return why
    counting, not_counting = _counting(record, names, project, namespace)
    return [] if counting else not_counting


def check(job: type, *, params: dict, is_dataflow: bool, changes_datastore: bool,
          skip: Optional[Skip], rehearsals: Callable[[], RehearsalStore],
          audit: Callable[[], audit_lib.AuditStore], runner: Optional[str] = None,
          project: Optional[str] = None, namespace: Optional[str] = None,
          revert: Optional[Revert] = None, no_backup: bool = False) -> dict:
    """What the run record keeps about the gate; raises GateError to refuse.

    `changes_datastore` is the plan's write mode's answer: only a run whose
    writes reach a Datastore is gated. Each decision is appended to `audit()`
    (saying so when the run keeps no before-images: `no_backup`)."""
    if not is_production(is_dataflow) or not changes_datastore:
        return {}
    name = job_class_lib.job_name(job)
    facts = {'user': identity.machine_user(), 'machine': identity.machine(),
             'runner': runner, 'project': project, 'sign': signatures.sign_decision}
    if revert is not None:
        if not revert.reason:
            raise GateError(f'A revert of a production run is audited with why: '
                            f'pass --reason TEXT (beam-jobs revert {revert.run_id} '
                            '--reason "...").')
        audit().append(name, audit_lib.REVERT, reason=f'revert of run {revert.run_id} '
                       f'by {revert.user}: {revert.reason}', **facts)
        return {'gate': 'revert', 'revert_of': revert.run_id, 'by': revert.user,
                'reason': revert.reason}
    if no_backup:
        audit_store = audit
        audit = lambda: _NoBackupAudit(audit_store())  # noqa: E731
    if not required():
        audit().append(name, audit_lib.OFF, reason='require_rehearsal = false', **facts)
        return {'gate': 'off (require_rehearsal = false)'}
    if skip is not None:
        if not skip.user or not skip.reason:
            raise GateError('--skip-rehearsal needs --user NAME and --reason TEXT: '
                            'the run record keeps who skipped the rehearsal and why.')
        audit().append(name, audit_lib.SKIPPED, reason=f'skipped by {skip.user}: '
                       f'{skip.reason}', **facts)
        return {'gate': 'skipped', 'skipped_by': skip.user, 'reason': skip.reason}
    fingerprint = code_version.fingerprint(job, params)
    names, oldest = approvers(), max_age_days()
    approved = [record for record in rehearsals().approved_of(name)
                if _standing(record, names)]
    for record in approved:
        if not _why_not(record, fingerprint, oldest, names, project, namespace):
            users = [approval['user'] for approval in
                     _counting(record, names, project, namespace)[0]]
            audit().append(name, audit_lib.APPROVED, rehearsal_id=record.rehearsal_id,
                           approved_by=users, **facts)
            return {'gate': 'approved', 'rehearsal_id': record.rehearsal_id,
                    'approved_by': users}
    how = (f'rehearse it (`beam-jobs rehearse {name} --export PATH`, over a fresh '
           f'export), have the rehearsal approved (`beam-jobs approve ID`'
           f'{" --project " + str(project) if signatures.signed_mode() else ""}'
           f'{" by one of " + ", ".join(names) if names else ""}), or override with '
           '--skip-rehearsal --user NAME --reason TEXT')
    if approved:
        newest = approved[0]
        why = _why_not(newest, fingerprint, oldest, names, project, namespace)
        sentence = (f'{name} may not run in production: its newest approved '
                    f'rehearsal, {newest.rehearsal_id}, does not cover this run '
                    f'({"; ".join(why)}). To go on, {how}.')
    else:
        sentence = (f'{name} has no approved rehearsal, so it may not run in '
                    f'production: {how}.')
    audit().append(name, audit_lib.REFUSED, reason=sentence, **facts)
    raise GateError(sentence)
