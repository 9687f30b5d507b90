"""A runner backend: where a run runs, and everything that follows from that.

One interface, as mrjob's runners have one (`run`, `counters`, `cat_output`,
`cleanup`), and one class per place a job runs (local.py, dataflow.py):

    start(plan, store, run_id)  record it queued, build its pipeline, call the
                                pre-start hook, record it started, launch it
    follow(store, record)       bring an unfinished record up to date (a
                                local process gone, a Dataflow job ended)
    cancel(store, record, who)  stop it wherever it runs; end it canceled

Every end goes through ending.end_run, which calls the job's hooks. Surfaces
(CLI, console, rehearsals, legacy API) start and cancel through launcher.py
and follow through follow.py, which picks the backend; the record store
never does any of this.
"""

from __future__ import annotations

import socket
from typing import Any, Optional, Sequence

import apache_beam as beam

from beam_jobs import failures
from beam_jobs import progress
from beam_jobs import target as target_lib
from beam_jobs.compile.store_output import StoreOutput
from beam_jobs.compat import beam as beam_compat
from beam_jobs.compile.transforms import RunJob
from beam_jobs.lifecycle import ending
from beam_jobs.lifecycle import hooks
from beam_jobs.lifecycle import run_logs
from beam_jobs.lifecycle import stops
from beam_jobs.lifecycle.planning import RunPlan
from beam_jobs.records import runs


class RunCanceledError(Exception):
    """The run was asked to stop (Ctrl-C or `beam-jobs cancel`)."""


def build_pipeline(plan: RunPlan, run_id: str, records: target_lib.Target,
                   queued_msec: Optional[int]) -> beam.Pipeline:
    """The planned job's pipeline, ending in the sink that stores its output
    beside its record."""
    pipeline = beam.Pipeline(options=plan.pipeline_options)
    data = plan.data_target(records)
    write_mode = plan.write_mode.for_run(run_id)
    if plan.steps is not None:     # a revert's own steps (lifecycle/revert.py)
        steps = plan.steps(data, write_mode)
    else:
        steps = RunJob(plan.job, plan.params, plan.shard_count, data.project,
                       data.namespace, with_order=True, source=plan.source,
                       write_mode=write_mode, queued_msec=queued_msec,
                       namespaces=plan.namespaces, database=data.database)
    _ = pipeline | steps | 'Store output' >> StoreOutput(run_id, records)
    return pipeline


class Backend:
    """Where runs run; subclasses launch, follow and cancel."""

    def start(self, plan: RunPlan, store: runs.RunStore, run_id: str, *,
              queue_name: Optional[str] = None,
              listeners: Sequence[progress.Listener] = (),
              verbose: bool = False) -> runs.RunRecord:
        """Run a checked plan under an existing `new` record.

        A run that fails is recorded `failed` with the reason and returned,
        not raised; a canceled one is recorded `canceled` and
        RunCanceledError is raised. Everything Beam logs goes to the run's
        log file (run_logs).
        """
        with run_logs.capture(run_id, verbose):
            queued = store.transition(
                run_id, runs.QUEUED, shard_count=plan.shard_count,
                params=plan.params, runner=plan.runner, queue_name=queue_name,
                log_file=str(run_logs.log_path(run_id)),
                source=plan.source_record(store.target),
                gate=plan.gate, backup=plan.backup_of(run_id),
                retry_of=plan.retry_of, revert_of=plan.revert_of,
                estimate=plan.estimate, budget=plan.budget)
            try:
                self.prepare(plan, run_id)
                pipeline = build_pipeline(plan, run_id, store.target, queued.queued_msec)
            except Exception as error:  # pylint: disable=broad-except
                run_logs.write_traceback(run_id, error)
                return ending.end_run(store, run_id, runs.FAILED,
                                      error=failures.describe(error))
            # A revert is not a run of the job's code: the job's hooks stay out.
            hook_error = (None if plan.revert_of else
                          hooks.call(plan.job_name, '_pre_start_hook', run_id))
            started: dict[str, Any] = {'hook_errors': [hook_error]} if hook_error else {}
            store.transition(run_id, runs.STARTED, **started)
            stop_requested: list[stops.Stop] = []
            try:
                with stops.stop_on_signals(stop_requested):
                    return self.launch(plan, store, run_id, pipeline, listeners,
                                       stop_requested)
            except BaseException as error:  # pylint: disable=broad-except
                return self._ended_by(error, stop_requested, store, run_id,
                                      plan.job_name)

    def _ended_by(self, error: BaseException, stop_requested: list[stops.Stop],
                  store: runs.RunStore, run_id: str, job_name: str) -> runs.RunRecord:
        """The end an exception out of `launch` means: a stop asked for from
        outside (cancel, Ctrl-C: canceled; a lost Datastore: failed), or a
        failure with its real cause."""
        run_logs.write_traceback(run_id, error)
        # A stop raised while a bundle was starting can leave Beam's sampler
        # thread running, and the process would never exit.
        beam_compat.stop_state_samplers()
        if stop_requested or isinstance(error, KeyboardInterrupt):
            stop = (stop_requested or [stops.Stop('interrupted (Ctrl-C)')])[0]
            if stop.status == runs.FAILED:
                return self.end(store, run_id, runs.FAILED, job_name=job_name,
                                error=stop.reason)
            self.end(store, run_id, runs.CANCELED, job_name=job_name,
                     stop_reason=stop.reason)
            raise RunCanceledError(stop.reason) from None
        record = self.end(store, run_id, runs.FAILED, job_name=job_name,
                          error=failures.describe(error))
        if not isinstance(error, Exception):
            raise error
        return record

    def prepare(self, plan: RunPlan, run_id: str) -> None:
        """Anything the backend sets on the plan's options for this run."""

    def launch(self, plan: RunPlan, store: runs.RunStore, run_id: str,
               pipeline: beam.Pipeline, listeners: Sequence[progress.Listener],
               stop_requested: list[stops.Stop]) -> runs.RunRecord:
        """Run or submit the pipeline; `stop_requested` fills with a
        stops.Stop when something outside asks the run to stop."""
        raise NotImplementedError

    def end(self, store: runs.RunStore, run_id: str, status: str, *,
            job_name: str, **fields: Any) -> runs.RunRecord:
        """Record the end of run `run_id` of job `job_name` (unless it has
        one already). The job's name is what a backend says of the run when
        its record cannot be read (local.py: a lost Datastore)."""
        return ending.end_unless_ended(store, run_id, status, **fields)

    def follow(self, store: runs.RunStore, record: runs.RunRecord) -> runs.RunRecord:
        raise NotImplementedError

    def cancel(self, store: runs.RunStore, record: runs.RunRecord,
               user_id: Optional[str]) -> runs.RunRecord:
        raise NotImplementedError


def end_if_orphaned(store: runs.RunStore, record: runs.RunRecord) -> runs.RunRecord:
    """A run whose process on this machine is gone, ended `failed` (or with
    the end it saved when it lost its Datastore: run_logs.save_end)."""
    if (record.status not in (runs.QUEUED, runs.STARTED) or not record.pid
            or record.host != socket.gethostname()):
        return record
    if runs.process_start(record.pid) == record.process_start:
        return record      # still running
    status, fields = run_logs.take_end(record.run_id) or (runs.FAILED, {
        'error': f'Orphaned: the process that ran it (pid {record.pid} on '
                 f'{record.host}) ended without recording a result, so '
                 'the run was cut short (crash, kill, or a lost '
                 'Datastore). Rerun the job.'})
    ended = ending.end_unless_ended(store, record.run_id, status, **fields)
    run_logs.drop_end(record.run_id)
    return ended
