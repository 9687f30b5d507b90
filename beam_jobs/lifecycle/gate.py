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
  the principals of that file are the approvers;
- the jobs it follows (the release plan's order: a rehearsal over another
  rehearsal's after state, or a request's `--follows`) have each completed a
  run against this target since their own approval.

`evaluate` gives that verdict now, with why and what to do next, without
recording it: `check` acts on it, `beam-jobs plan` and the console show it.

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
from typing import Any, Callable, Mapping, Optional, Protocol

from beam_jobs import config
from beam_jobs import identity
from beam_jobs import job_class as job_class_lib
from beam_jobs import refusals
from beam_jobs import target as target_lib
from beam_jobs.lifecycle import approval_signatures as signatures
from beam_jobs.lifecycle import code_version
from beam_jobs.records import audit as audit_lib
from beam_jobs.records.rehearsals import RehearsalRecord, RehearsalStore
from beam_jobs.records.runs import RunRecord

DEFAULT_MAX_AGE_DAYS = 30

# `runs_of(job_name)`: the job's run records where production runs are
# recorded, newest first (record_stores.production_runs).
RunsOf = Callable[[str], list[RunRecord]]


class GateError(refusals.Refused):
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


class AuditTrail(Protocol):
    """Where the gate appends its decisions: an audit_lib.AuditStore, or a
    _NoBackupAudit in front of one."""

    def append(self, job_name: str, decision: str,
               **fields: Any) -> audit_lib.GateDecision: ...


class _NoBackupAudit:
    """An audit store whose entries say the run keeps no before-images."""

    def __init__(self, store: AuditTrail):
        self._store = store

    def append(self, job_name: str, decision: str, reason: Optional[str] = None,
               **fields: Any) -> audit_lib.GateDecision:
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


def export_age_days(export: Mapping[str, Any],
                    now: Optional[datetime.datetime] = None) -> Optional[float]:
    """Days since the export a rehearsal ran on was taken (None: unknown)."""
    stamp = str((export or {}).get('timestamp') or '')
    try:
        taken = datetime.datetime.strptime(stamp.split('_')[0], '%Y-%m-%dT%H:%M:%S')
    except ValueError:
        return None
    taken = taken.replace(tzinfo=datetime.timezone.utc)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return (now - taken).total_seconds() / 86400


def _standing(record: RehearsalRecord, names: Optional[list[str]]) -> list[dict[str, Any]]:
    """Approvals that count: not withdrawn, and by a named approver if any."""
    return [approval for approval in record.standing_approvals
            if names is None or approval['user'] in names]


def _why_uncounted(record: RehearsalRecord, approval: dict[str, Any], project: Optional[str],
                   namespace: Optional[str], database: Optional[str] = None) -> Optional[str]:
    """None when a standing approval counts for a run against this target:
    one for the run's database (an approval made before databases were
    named is for `(default)`), then always in unsigned mode; in signed mode,
    when its signature covers this target, or it was made in the console
    where console_approvals = true."""
    if (approval.get('database') or '') != (database or ''):
        return (f'{approval["user"]} approved it for database '
                f'{approval.get("database") or "(default)"}, not {database or "(default)"}')
    if not signatures.signed_mode():
        return None
    if approval.get('via') == 'console':
        return None if signatures.console_approvals() else (
            f'the approval by {approval["user"]} was made in the console, and '
            'console_approvals is off')
    return signatures.covers(record, approval, project, namespace)


def _counting(record: RehearsalRecord, names: Optional[list[str]],
              project: Optional[str], namespace: Optional[str],
              database: Optional[str] = None) -> tuple[list[dict[str, Any]], list[str]]:
    """The standing approvals that count for this run, and why the others do not."""
    counting: list[dict[str, Any]] = []
    why: list[str] = []
    for approval in _standing(record, names):
        reason = _why_uncounted(record, approval, project, namespace, database)
        if reason is None:
            counting.append(approval)
        else:
            why.append(reason)
    return counting, why


def _why_not(record: RehearsalRecord, fingerprint: dict[str, Any], oldest: float,
             names: Optional[list[str]] = None, project: Optional[str] = None,
             namespace: Optional[str] = None, database: Optional[str] = None) -> list[str]:
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
    counting, not_counting = _counting(record, names, project, namespace, database)
    return [] if counting else not_counting


def check(job: type, *, params: Mapping[str, Any], is_dataflow: bool, changes_datastore: bool,
          skip: Optional[Skip], rehearsals: Callable[[], RehearsalStore],
          audit: Callable[[], AuditTrail], runner: Optional[str] = None,
          project: Optional[str] = None, namespace: Optional[str] = None,
          revert: Optional[Revert] = None, no_backup: bool = False,
          runs_of: Optional[RunsOf] = None,
          database: Optional[str] = None) -> dict[str, Any]:
    """What the run record keeps about the gate; raises GateError to refuse.

    `changes_datastore` is the plan's write mode's answer: only a run whose
    writes reach a Datastore is gated. Each decision is appended to `audit()`
    (saying so when the run keeps no before-images: `no_backup`). With
    `runs_of` (see `evaluate`), a job that follows others waits for them."""
    if not is_production(is_dataflow) or not changes_datastore:
        return {}
    name = job_class_lib.job_name(job)
    facts: dict[str, Any] = {'user': identity.machine_user(), 'machine': identity.machine(),
                             'runner': runner, 'project': project,
                             'sign': signatures.sign_decision}
    if database:
        facts['database'] = database
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
        audit = lambda: _NoBackupAudit(audit_store())  # noqa: E731  # the same append
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
    verdict = evaluate(job, params, rehearsals(), runs_of, project, namespace, database)
    if verdict.may_run:
        audit().append(name, audit_lib.APPROVED, rehearsal_id=verdict.rehearsal_id,
                       approved_by=verdict.approved_by, **facts)
        return {'gate': 'approved', 'rehearsal_id': verdict.rehearsal_id,
                'approved_by': verdict.approved_by}
    audit().append(name, audit_lib.REFUSED, reason=verdict.sentence, **facts)
    raise GateError(verdict.sentence)


@dataclasses.dataclass
class Verdict:
    """What the gate decides for a job now, and why: the one answer `check`,
    `beam-jobs plan` and the console's release plan all give."""

    job_name: str
    may_run: bool
    sentence: str                        # the refusal, or what lets it run
    state: str                           # may run | unrehearsed | unapproved |
                                         # not covered | waits for
    rehearsal_id: Optional[str] = None
    approved_by: list[str] = dataclasses.field(default_factory=list)
    reasons: list[str] = dataclasses.field(default_factory=list)
    # When the approving rehearsal's export gets too old (msec), if known.
    expires_msec: Optional[int] = None
    follows: list[str] = dataclasses.field(default_factory=list)
    next_step: str = ''


def _expires_msec(record: RehearsalRecord, oldest: float) -> Optional[int]:
    age = export_age_days(record.export)
    if age is None:
        return None
    now = datetime.datetime.now(datetime.timezone.utc).timestamp()
    return int((now + (oldest - age) * 86400) * 1000)


def approved_at(record: RehearsalRecord) -> Optional[int]:
    """When its first standing approval was given (None: none stands)."""
    times = [approval.get('at_msec') or 0 for approval in record.standing_approvals]
    return min(times) if times else None


def counts_as_run(record: RunRecord, job_name: str, since_msec: int, project: Optional[str],
                  namespace: Optional[str], database: Optional[str] = None) -> bool:
    """Whether a run record is a production run of the job since
    `since_msec`: completed, wrote (not a dry run, not a revert, not over an
    export), against this target."""
    source = record.source or {}
    where = record.dataflow.project or source.get('project')
    return (record.job_name == job_name and record.status == 'completed'
            and not record.params.get('dry_run') and not record.revert_of
            and source.get('type') != 'export'
            and (project is None or where == project)
            and (source.get('namespace') or None) == (namespace or None)
            and (source.get('database') or None) == (database or None)
            and (record.finished_msec or 0) >= since_msec)


def _has_run(job_name: str, runs: list[RunRecord], since_msec: int, project: Optional[str],
             namespace: Optional[str], database: Optional[str] = None) -> bool:
    return any(counts_as_run(record, job_name, since_msec, project, namespace, database)
               for record in runs)


def _waits_for(record: RehearsalRecord, rehearsals: RehearsalStore,
               runs_of: Optional[RunsOf], project: Optional[str],
               namespace: Optional[str], database: Optional[str] = None) -> list[str]:
    """The jobs this rehearsal follows that have not run in production since
    their approval, each as a phrase naming why."""
    if runs_of is None:
        return []
    waiting: list[str] = []
    for item in record.follows:
        job_name = item['job']
        followed = None
        if item.get('rehearsal_id'):
            try:
                followed = rehearsals.get(item['rehearsal_id'])
            except LookupError:
                followed = None
        if followed is None or not followed.is_approved:
            approved = rehearsals.approved_of(job_name)
            followed = approved[0] if approved else None
        if followed is None:
            waiting.append(f'{job_name} (it has no approved rehearsal of its own, and '
                           'has not run)')
            continue
        since = approved_at(followed) or followed.created_msec
        if not _has_run(job_name, runs_of(job_name), since, project, namespace, database):
            where = f' against {project}' if project else ''
            waiting.append(f'{job_name} (no completed run{where} since its approval '
                           f'of {_date(since)})')
    return waiting


def _date(msec: int) -> str:
    return datetime.datetime.fromtimestamp(msec / 1000, datetime.timezone.utc).strftime(
        '%Y-%m-%d %H:%M UTC')


def evaluate(job: type, params: Mapping[str, Any], rehearsals: RehearsalStore,
             runs_of: Optional[RunsOf] = None,
             project: Optional[str] = None, namespace: Optional[str] = None,
             database: Optional[str] = None) -> Verdict:
    """What the gate decides now for a production run of `job` with
    `params` against `project` (and `namespace`, `database`), without
    recording it.

    `runs_of(job_name)` lists run records (newest first) where production
    runs are recorded, so that a job that follows others waits for them."""
    name = job_class_lib.job_name(job)
    fingerprint = code_version.fingerprint(job, params)
    names, oldest = approvers(), max_age_days()
    approved = [record for record in rehearsals.approved_of(name)
                if _standing(record, names)]
    how = (f'rehearse it (`beam-jobs rehearse {name} --export PATH`, over a fresh '
           f'export), have the rehearsal approved (`beam-jobs approve ID`'
           f'{" --project " + str(project) if signatures.signed_mode() else ""}'
           f'{" by one of " + ", ".join(names) if names else ""}), or override with '
           '--skip-rehearsal --user NAME --reason TEXT')
    for record in approved:
        if _why_not(record, fingerprint, oldest, names, project, namespace, database):
            continue
        users = [approval['user'] for approval in
                 _counting(record, names, project, namespace, database)[0]]
        expires = _expires_msec(record, oldest)
        waiting = _waits_for(record, rehearsals, runs_of, project, namespace, database)
        if waiting:
            first = waiting[0].split(' ', 1)[0]
            return Verdict(
                name, False, f'{name} may not run in production yet: its rehearsal '
                f'{record.rehearsal_id} ran after the writes of jobs that have not run '
                f'there: {"; ".join(waiting)}. Run them first, in order, then {name}; or '
                'override with --skip-rehearsal --user NAME --reason TEXT.',
                'waits for', record.rehearsal_id, users, waiting, expires,
                record.followed_jobs, f'run {first} first')
        return Verdict(name, True, f'{name} may run: rehearsal {record.rehearsal_id}, '
                       f'approved by {", ".join(users)}.', 'may run', record.rehearsal_id,
                       users, [], expires, record.followed_jobs,
                       f'beam-jobs run {name} (before the approval expires)')
    if approved:
        newest = approved[0]
        why = _why_not(newest, fingerprint, oldest, names, project, namespace, database)
        return Verdict(name, False, f'{name} may not run in production: its newest '
                       f'approved rehearsal, {newest.rehearsal_id}, does not cover this '
                       f'run ({"; ".join(why)}). To go on, {how}.', 'not covered',
                       newest.rehearsal_id, reasons=why, follows=newest.followed_jobs,
                       next_step='rehearse it again over a fresh export, and approve it')
    rehearsed = [r for r in rehearsals.recent(20, name) if r.verdict == 'passed']
    if rehearsed:
        return Verdict(name, False, f'{name} has no approved rehearsal, so it may not '
                       f'run in production: {how}.', 'unapproved', rehearsed[0].rehearsal_id,
                       reasons=[f'rehearsal {rehearsed[0].rehearsal_id} passed but is not '
                                'approved'], follows=rehearsed[0].followed_jobs,
                       next_step=f'an approver approves {rehearsed[0].rehearsal_id}')
    return Verdict(name, False, f'{name} has no approved rehearsal, so it may not run in '
                   f'production: {how}.', 'unrehearsed', reasons=['not rehearsed'],
                   next_step=f'beam-jobs rehearse {name} --export PATH')
