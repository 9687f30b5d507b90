"""A run's lifecycle, as the surfaces ask for it: start and cancel.

Every way of starting a job (`Job.enqueue`, `beam-jobs run`, a rehearsal,
the console) plans it (planning.py), creates its record, and starts it here
on the backend its runner names (local.py, dataflow.py; follow.py chooses
it). Every way of reading a run as it is now follows it through follow.py.
The record store itself only stores.
"""

from __future__ import annotations

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
