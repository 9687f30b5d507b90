"""A run's lifecycle, as the surfaces ask for it: start and cancel.

Every way of starting a job (`Job.enqueue`, `beam-jobs run`, a rehearsal,
the console) plans it (planning.py), creates its record, and starts it here
on the backend its runner names (local.py, dataflow.py; follow.py chooses
it). Every way of reading a run as it is now follows it through follow.py.
A run whose record was made but that never starts is ended here too, one
function per reason (`refuse`, `end_unstarted`, `cancel_unneeded`): no
surface ends a record itself. The record store itself only stores.
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping, Optional, Sequence

from beam_jobs import job_class as job_class_lib
from beam_jobs import progress
from beam_jobs import refusals
from beam_jobs import target as target_lib
from beam_jobs.lifecycle import ending
from beam_jobs.lifecycle import follow
from beam_jobs.lifecycle import planning
from beam_jobs.lifecycle.backend import RunCanceledError  # noqa: F401
from beam_jobs.records import runs


def start(plan: planning.RunPlan, store: runs.RunStore, run_id: str, *,
          queue_name: Optional[str] = None,
          listeners: Sequence[progress.Listener] = (),
          verbose: bool = False) -> runs.RunRecord:
    """Run a planned run under its `new` record: to its end locally, or
    submitted (the record left `started`) on Dataflow."""
    return follow.backend_for(plan.runner).start(
        plan, store, run_id, queue_name=queue_name, listeners=listeners, verbose=verbose)


def run_job(job: type, *, run_id: Optional[str] = None,
            params: Optional[Mapping[str, Any]] = None,
            shard_count: Optional[int] = None,
            pipeline_args: Sequence[str] = (),
            target: Optional[target_lib.Target] = None,
            queue_name: Optional[str] = None,
            export: Optional[str] = None) -> runs.RunRecord:
    """Plan, record and run `job` (the legacy `enqueue`); its final record.

    Bad input is refused (refusals.Refused) before any record is made. When
    the record already exists (`Job.create_new()` then `Job.enqueue()`), a
    refusal ends it `failed` with the reason instead; but a class that is no
    job is raised as it was, leaving the record as it is (it is not its run).
    """
    try:
        plan = planning.plan_run(job, params, shard_count, pipeline_args, export,
                                 namespace=target.namespace if target else None)
    except job_class_lib.InvalidJobError:
        raise
    except refusals.Refused as error:
        if run_id is None:
            raise
        store = runs.RunStore(target or target_lib.Target.from_environment())
        return ending.end_unless_ended(store, run_id, runs.FAILED, error=str(error),
                                       params=dict(params or {}))
    store = runs.RunStore(target or target_lib.Target.from_environment(plan.flag_project))
    if run_id is None:
        run_id = store.create(job_class_lib.job_name(job)).run_id
    return start(plan, store, run_id, queue_name=queue_name)


def cancel_run(store: runs.RunStore, run_id: str,
               user_id: Optional[str] = None) -> runs.RunRecord:
    """Stop a run wherever it runs, and end its record `canceled`."""
    record = follow.current(store, run_id)
    if record.is_terminal:
        raise runs.InvalidTransitionError(
            f'Run {run_id} already ended ({record.status}); nothing to cancel.')
    if record.status != runs.STARTED:   # not running anywhere yet
        return follow.LOCAL.cancel(store, record, user_id)
    return follow.backend_for(record.runner).cancel(store, record, user_id)


def refuse(store: runs.RunStore, run_id: str, reason: str) -> None:
    """End a run whose record was made ahead of its plan (the console makes
    it, then runs the command), refused before it started: `failed` with
    the refusal, so it does not stay `new`. A run that has ended already, or
    has no record, is left as it is."""
    with contextlib.suppress(runs.InvalidTransitionError, runs.UnknownRunError):
        ending.end_run(store, run_id, runs.FAILED, error=reason)


def end_unstarted(store: runs.RunStore, run_id: str, reason: str,
                  log_file: Optional[str] = None) -> Optional[runs.RunRecord]:
    """End a run whose process never started it (it could not be started,
    or exited first): `failed` with the reason, if its record is still
    `new`; a run that got further records its own end. None if it did."""
    fields: dict[str, Any] = {'log_file': log_file} if log_file else {}
    try:
        if store.get(run_id).status != runs.NEW:
            return None
        return ending.end_run(store, run_id, runs.FAILED, error=reason, **fields)
    except (runs.InvalidTransitionError, runs.UnknownRunError):
        return None


def cancel_unneeded(store: runs.RunStore, run_id: str, reason: str) -> runs.RunRecord:
    """End a run made for a step that turned out not to need it (another
    reader of a rehearsal started that step first): `canceled` with the
    reason, before it started."""
    return ending.end_unless_ended(store, run_id, runs.CANCELED, error=reason)
