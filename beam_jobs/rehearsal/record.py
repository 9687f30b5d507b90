"""A rehearsal's record: created once, changed a step at a time, ended once.

The record is created, with everything a reader on another machine needs to
take the rehearsal on (its `RehearsalState`), before its first run starts.
Every later change is one transaction guarded by what the change expects to
find (`change_if`), so two readers taking the same step never both take it.
It ends once, with its verdict, and the sign-off (signoff.py) hears of it.
"""

from __future__ import annotations

from typing import Callable, Optional

from beam_jobs import identity
from beam_jobs.lifecycle import code_version
from beam_jobs.lifecycle import record_stores
from beam_jobs.records import rehearsals as record_lib
from beam_jobs.records import runs
from beam_jobs.records.store import now_msec
from beam_jobs.rehearsal import signoff
from beam_jobs.rehearsal.plan import RehearsalPlan

Change = Callable[[record_lib.RehearsalRecord], None]


def store_of(namespace: Optional[str]) -> record_lib.RehearsalStore:
    """Where a rehearsal's record is kept: published where the team's
    sign-off lives (its runs stay where they ran)."""
    return record_lib.RehearsalStore(record_stores.signoff_target(namespace))


def create(store: record_lib.RehearsalStore, rehearsal: RehearsalPlan,
           run_store: runs.RunStore) -> record_lib.RehearsalRecord:
    """The record of a planned rehearsal, running, with no run yet."""
    job_plan = rehearsal.job_plan
    return store.create(
        job_plan.job_name, rehearsal_id=rehearsal.rehearsal_id,
        code_version=code_version.of(rehearsal.job, job_plan.params),
        export=job_plan.source.describe(run_store.target),
        params=job_plan.params, shard_count=job_plan.shard_count,
        coordinator_notes=getattr(rehearsal.job, 'COORDINATOR_NOTES', None),
        request_id=rehearsal.request_id, follows=rehearsal.follows,
        rehearsed_by=identity.machine_user(),
        machine=identity.machine(),
        runner=job_plan.runner if job_plan.is_dataflow else None,
        resume=rehearsal.state.as_record())


def new_run(run_store: runs.RunStore, job_name: str, rehearsal_id: str) -> runs.RunRecord:
    """A run of the rehearsal, created (not started), that names it."""
    run = run_store.create(job_name)
    run_store.update(run.run_id, rehearsal_id=rehearsal_id)
    return run


def job_run(store: record_lib.RehearsalStore, run_store: runs.RunStore,
            record: record_lib.RehearsalRecord) -> str:
    """The run of the rehearsal's job, created and linked both ways; its ID."""
    run = new_run(run_store, record.job_name, record.rehearsal_id)
    store.change(record.rehearsal_id, lambda r: setattr(r, 'run_id', run.run_id))
    return run.run_id


class _Taken(Exception):
    """Another reader took this step first."""


def change_if(store: record_lib.RehearsalStore, rehearsal_id: str,
              guard: Callable[[record_lib.RehearsalRecord], bool], change: Change) -> bool:
    """Apply `change` to the record in one transaction if `guard(record)`
    still holds (no other reader took the step); whether it did."""
    def apply(record: record_lib.RehearsalRecord) -> None:
        if not guard(record):
            raise _Taken()
        change(record)
    try:
        store.change(rehearsal_id, apply)
    except _Taken:
        return False
    return True


def end(store: record_lib.RehearsalStore, rehearsal_id: str, last: Change) -> None:
    """End a running rehearsal once: `last` adds what the verdict weighs (its
    reasons); then it has passed if there is no reason it failed. Whoever
    ends it tells the sign-off, so a request learns it was rehearsed."""
    def record_it(record: record_lib.RehearsalRecord) -> None:
        last(record)
        record.verdict = record_lib.FAILED if record.reasons else record_lib.PASSED
        record.durations['total'] = round((now_msec() - record.created_msec) / 1000, 1)
    if change_if(store, rehearsal_id, lambda record: record.is_running, record_it):
        signoff.rehearsed(store.target, store.get(rehearsal_id))


def fail(store: record_lib.RehearsalStore, rehearsal_id: str, reason: str) -> None:
    """End a running rehearsal `failed` with `reason` (its runs have ended
    or are being ended by whoever stopped them)."""
    end(store, rehearsal_id, lambda record: record.reasons.append(reason))
