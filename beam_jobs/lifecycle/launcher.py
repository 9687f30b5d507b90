"""A run's lifecycle, as the surfaces ask for it: start, follow, cancel.

Every way of starting a job (`Job.enqueue`, `beam-jobs run`, a rehearsal,
the console) plans it (planning.py), creates its record, and starts it here
on the backend its runner names (local.py, dataflow.py). Every way of reading
a run that should see it as it is now (`status`, `runs`, the console,
`get_status_code`) follows it here: the backend brings an unfinished record
up to date (a process gone, a Dataflow job ended) and ends it, with the job's
hooks, if it has ended. The record store itself only stores.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from beam_jobs import job_class as job_class_lib
from beam_jobs import options as options_lib
from beam_jobs import progress
from beam_jobs import refusals
from beam_jobs import target as target_lib
from beam_jobs.lifecycle import ending
from beam_jobs.lifecycle import planning
from beam_jobs.lifecycle.backend import Backend, RunCanceledError  # noqa: F401
from beam_jobs.lifecycle.dataflow import DataflowBackend
from beam_jobs.lifecycle.local import LocalBackend
from beam_jobs.records import runs

_LOCAL = LocalBackend()
_DATAFLOW = DataflowBackend()


def backend_for(runner: Optional[str]) -> Backend:
    """The backend of runs on `runner` (a record's or a plan's runner name)."""
    return _DATAFLOW if runner in options_lib.DATAFLOW_RUNNERS else _LOCAL


def start(plan: planning.RunPlan, store: runs.RunStore, run_id: str, *,
          queue_name: Optional[str] = None,
          listeners: Sequence[progress.Listener] = (),
          verbose: bool = False) -> runs.RunRecord:
    """Run a planned run under its `new` record: to its end locally, or
    submitted (the record left `started`) on Dataflow."""
    return backend_for(plan.runner).start(plan, store, run_id, queue_name=queue_name,
                                          listeners=listeners, verbose=verbose)


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
    refusal ends it `failed` with the reason instead.
    """
    try:
        plan = planning.plan_run(job, params, shard_count, pipeline_args, export,
                                 namespace=target.namespace if target else None)
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


def follow(store: runs.RunStore, record: runs.RunRecord) -> runs.RunRecord:
    """The record brought up to date by its backend (ended if its run has)."""
    if record.is_terminal:
        return record
    return backend_for(record.runner).follow(store, record)


def current(store: runs.RunStore, run_id: str) -> runs.RunRecord:
    """A run's record as it is now."""
    return follow(store, store.get(run_id))


def recent(store: runs.RunStore, limit: int = 20,
           job_name: Optional[str] = None) -> list[runs.RunRecord]:
    """The newest runs first, each as it is now."""
    return [follow(store, record) for record in store.recent(limit, job_name)]


def unfinished(store: runs.RunStore, job_name: Optional[str] = None,
               limit: Optional[int] = None) -> list[runs.RunRecord]:
    """Runs that are new, queued or started now, newest first (orphans and
    finished Dataflow jobs drop out as they are followed)."""
    followed = [follow(store, record) for record in store.unfinished(job_name, limit)]
    return [record for record in followed if not record.is_terminal]


def cancel_run(store: runs.RunStore, run_id: str,
               user_id: Optional[str] = None) -> runs.RunRecord:
    """Stop a run wherever it runs, and end its record `canceled`."""
    record = current(store, run_id)
    if record.is_terminal:
        raise runs.InvalidTransitionError(
            f'Run {run_id} already ended ({record.status}); nothing to cancel.')
    if record.status != runs.STARTED:   # not running anywhere yet
        return _LOCAL.cancel(store, record, user_id)
    return backend_for(record.runner).cancel(store, record, user_id)
