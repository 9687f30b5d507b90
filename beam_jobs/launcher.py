"""A run's lifecycle: check it, record it, build its pipeline, run it, record the end.

Every way of starting a job (`Job.enqueue`, `beam-jobs run`, a rehearsal,
the console) comes here. `plan_run` checks everything that can be refused
before a run exists (the job class, params, shard count, every flag, a
Dataflow run's settings and credentials), so bad input never leaves a
record behind. `execute` then runs the plan, and every way a run can end
(success, an exception, Ctrl-C, `beam-jobs cancel` sending SIGTERM, its
Datastore going away) leaves the record in a terminal status with the reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import sys
import time
from typing import Any, Mapping, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions
from apache_beam.options.pipeline_options import GoogleCloudOptions
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState

from beam_jobs import config
from beam_jobs import dataflow
from beam_jobs import datastore
from beam_jobs import emulator
from beam_jobs import failures
from beam_jobs import hooks
from beam_jobs import job_class as job_class_lib
from beam_jobs import options as options_lib
from beam_jobs import output
from beam_jobs import progress
from beam_jobs import run_logs
from beam_jobs import runs
from beam_jobs import sources
from beam_jobs import stops
from beam_jobs.rehearsal import gate as gate_lib
from beam_jobs.rehearsal.record import RehearsalStore
from beam_jobs.transforms import DEFAULT_SHARD_COUNT
from beam_jobs.transforms import RunJob


class RunCanceledError(Exception):
    """The run was asked to stop (Ctrl-C or `beam-jobs cancel`)."""


# Counters every run reports, zero when nothing incremented them.
STANDARD_COUNTERS = ('map_calls', 'pairs_emitted', 'keys_reduced',
                     'output_lines', 'errors')


def collect_counters(result, job: type) -> dict[str, int]:
    """The framework's and the job's own counters, summed over steps.

    Beam's IO counters (RPC successes, throttling) are left out: they speak
    of the plumbing, not of the job.
    """
    job_name = job_class_lib.job_name(job)
    counters = dict.fromkeys(STANDARD_COUNTERS, 0)
    for model in job.entity_classes_to_map_over():
        counters[f'entities_read.{datastore.kind_of(model)}'] = 0
    for counter in result.metrics().query()['counters']:
        metric = counter.key.metric
        if metric.namespace == datastore.METRICS_NAMESPACE:
            name = metric.name
        elif metric.namespace == job_name:
            name = f'{job_name}.{metric.name}'
        else:
            continue
        value = counter.committed if counter.committed is not None else counter.attempted
        counters[name] = counters.get(name, 0) + int(value or 0)
    return dict(sorted(counters.items()))


def check_shard_count(shard_count: Optional[int]) -> int:
    """The shard count to use; bad ones are refused before a run starts."""
    if shard_count is None:
        return DEFAULT_SHARD_COUNT
    if isinstance(shard_count, bool) or not isinstance(shard_count, int) or shard_count < 1:
        raise ValueError(f'shard_count must be a positive whole number, not '
                         f'{shard_count!r}: it is how many key ranges each '
                         'Datastore read is split into (default 8).')
    return shard_count


@dataclasses.dataclass
class RunPlan:
    """A run that passed every check: what `execute` needs, nothing to refuse."""

    job: type
    params: dict
    shard_count: int
    pipeline_options: PipelineOptions
    # Where it reads (sources.py); `export` is the path it was given, if any.
    source: Any = dataclasses.field(default_factory=sources.DatastoreSource)
    export: Optional[str] = None
    # A rehearsal's run: its writes go to this folder (export/after_state.py).
    after_state: Optional[str] = None
    # What the production gate found (rehearsal/gate.py), kept in the record.
    gate: dict = dataclasses.field(default_factory=dict)

    @property
    def is_dataflow(self) -> bool:
        return options_lib.is_dataflow(self.pipeline_options)

    @property
    def runner(self) -> str:
        return options_lib.runner_name(self.pipeline_options)

    @property
    def flag_project(self) -> Optional[str]:
        return self.pipeline_options.view_as(GoogleCloudOptions).project


# The legacy way to name a run's export: an entry of additional_job_params.
EXPORT_PARAM = 'export'


def plan_run(job: type, params: Optional[Mapping[str, Any]] = None,
             shard_count: Optional[int] = None,
             pipeline_args: Sequence[str] = (),
             export: Optional[str] = None,
             namespace: Optional[str] = None,
             skip_rehearsal: Optional[gate_lib.Skip] = None) -> RunPlan:
    """Check a run before it exists; raises ValueError (or a subclass:
    FlagError, DataflowError, ExportError, GateError; InvalidJobError is a
    TypeError) with one sentence saying what to fix."""
    models = job_class_lib.validate(job)
    params = dict(params or {})
    export = export or params.pop(EXPORT_PARAM, None)
    job_class_lib.check_params(params)
    shard_count = check_shard_count(shard_count)
    pipeline_options = options_lib.pipeline_options(pipeline_args)
    if options_lib.is_dataflow(pipeline_options):
        dataflow.check(pipeline_options)
    source = sources.for_run(export)
    if export:
        namespace_read = namespace or os.environ.get(datastore.NAMESPACE_ENV)
        source.check(models, namespace_read)
        options_lib.use_processes_for_export(
            pipeline_options, pipeline_args, source.entity_total(models, namespace_read))
    gate = gate_lib.check(
        job, is_dataflow=options_lib.is_dataflow(pipeline_options),
        writes_data=not export and not params.get('dry_run'), skip=skip_rehearsal,
        rehearsals=lambda: RehearsalStore(run_store((), namespace).target))
    return RunPlan(job, params, shard_count, pipeline_options, source, export,
                   gate=gate)


def run_store(pipeline_args: Sequence[str] = (),
              namespace: Optional[str] = None) -> runs.RunStore:
    """The run records of the Datastore that runs with these flags use.

    A local run's: the emulator that DATASTORE_EMULATOR_HOST names, else the
    project's own (started, or shared with other commands). A Dataflow run
    never starts an emulator: its records live in the Datastore of its
    project (or of the emulator DATASTORE_EMULATOR_HOST names, as in tests).
    """
    pipeline_options = options_lib.pipeline_options(pipeline_args)
    project = None
    if options_lib.is_dataflow(pipeline_options):
        project = pipeline_options.view_as(GoogleCloudOptions).project
    else:
        emulator.ensure_environment()
    return runs.RunStore(datastore.Target.from_environment(project, namespace))


def build_pipeline(plan: RunPlan, run_id: str, target: datastore.Target,
                   queued_msec: int) -> beam.Pipeline:
    """The job's pipeline, ending in the sink that stores its output."""
    pipeline = beam.Pipeline(options=plan.pipeline_options)
    params = job_class_lib.with_framework_params(plan.job, plan.params, queued_msec)
    _ = (
        pipeline
        | RunJob(plan.job, params, plan.shard_count, target.project,
                 target.namespace, with_order=True, export=plan.export,
                 after_state=plan.after_state)
        | 'Store output' >> output.StoreOutput(run_id, target)
    )
    return pipeline


def run_job(job: type, *, run_id: Optional[str] = None,
            params: Optional[Mapping[str, Any]] = None,
            shard_count: Optional[int] = None,
            pipeline_args: Sequence[str] = (),
            target: Optional[datastore.Target] = None,
            queue_name: Optional[str] = None,
            export: Optional[str] = None) -> runs.RunRecord:
    """Check, record and run `job` to the end; return its final record.

    Bad input is refused with an exception before any record is made. When
    the record already exists (`Job.create_new()` then `Job.enqueue()`), bad
    input ends it `failed` with the reason instead. See `execute` for how a
    run that starts can end.
    """
    try:
        plan = plan_run(job, params, shard_count, pipeline_args, export,
                        namespace=target.namespace if target else None)
    except (ValueError, dataflow.DataflowError) as error:
        if run_id is None:
            raise
        store = runs.RunStore(target or datastore.Target.from_environment())
        return store.transition(run_id, runs.FAILED, error=str(error),
                                params=dict(params or {}))
    target = target or datastore.Target.from_environment(plan.flag_project)
    store = runs.RunStore(target)
    if run_id is None:
        run_id = store.create(job_class_lib.job_name(job)).run_id
    return execute(plan, store, run_id, queue_name=queue_name)


def execute(plan: RunPlan, store: runs.RunStore, run_id: str, *,
            queue_name: Optional[str] = None,
            progress_listeners: Sequence[progress.Listener] = (),
            verbose: bool = False) -> runs.RunRecord:
    """Run a checked plan under an existing record, to its end.

    A run that fails is recorded `failed` with the reason and returned, not
    raised; a canceled one is recorded `canceled` and RunCanceledError is
    raised. A Dataflow run is submitted and its record returned `started`,
    with the Dataflow job id and console link: it is followed from the
    record. Everything Beam logs goes to the run's log file (run_logs).
    """
    with run_logs.capture(run_id, verbose):
        return _execute(plan, store, run_id, queue_name, progress_listeners)


def _execute(plan: RunPlan, store: runs.RunStore, run_id: str,
             queue_name: Optional[str],
             progress_listeners: Sequence[progress.Listener]) -> runs.RunRecord:
    job_name = job_class_lib.job_name(plan.job)
    queued = store.transition(
        run_id, runs.QUEUED, shard_count=plan.shard_count, params=plan.params,
        runner=plan.runner, queue_name=queue_name,
        log_file=str(run_logs.log_path(run_id)),
        source=plan.source.describe(store.target), gate=plan.gate)
    try:
        if plan.is_dataflow:
            dataflow.name_job(plan.pipeline_options, run_id, job_name)
        pipeline = build_pipeline(plan, run_id, store.target, queued.queued_msec)
    except Exception as error:  # pylint: disable=broad-except
        run_logs.write_traceback(run_id, error)
        return store.transition(run_id, runs.FAILED, error=failures.describe(error))
    hook_error = hooks.call(job_name, '_pre_start_hook', run_id)
    store.transition(run_id, runs.STARTED,
                     **({'hook_errors': [hook_error]} if hook_error else {}))
    stop_requested: list = []
    watched = None if plan.is_dataflow else os.environ.get(emulator.EMULATOR_HOST_ENV)
    try:
        with stops.stop_on_signals(stop_requested), \
                stops.DatastoreWatch(watched, stop_requested):
            if plan.is_dataflow:
                # Submitted and left running: readers of the record follow
                # the job from here (see dataflow.refresh).
                return dataflow.submit(pipeline, plan.pipeline_options, store, run_id)
            with _progress(plan, store, run_id, progress_listeners) as reporter:
                result = pipeline.run()
                state = result.wait_until_finish()
    except BaseException as error:  # pylint: disable=broad-except
        run_logs.write_traceback(run_id, error)
        if stop_requested or isinstance(error, KeyboardInterrupt):
            stop = (stop_requested or [stops.Stop('interrupted (Ctrl-C)')])[0]
            if stop.status == runs.FAILED:
                return _record_end(store, run_id, runs.FAILED, error=stop.reason)
            _record_end(store, run_id, runs.CANCELED,
                        error=_cancel_message(store, run_id, stop))
            raise RunCanceledError(stop.reason) from None
        record = _record_end(store, run_id, runs.FAILED,
                             error=failures.describe(error))
        if not isinstance(error, Exception):
            raise
        return record
    if state != PipelineState.DONE:
        return _record_end(store, run_id, runs.FAILED,
                           error=f'The pipeline ended in state {state}.')
    counters = collect_counters(result, plan.job)
    return _record_end(store, run_id, runs.COMPLETED, counters=counters,
                       progress=reporter.final(),
                       error_count=counters.get('errors', 0),
                       output_line_count=counters.get('output_lines', 0))


def _progress(plan: RunPlan, store: runs.RunStore, run_id: str,
              listeners: Sequence[progress.Listener]) -> progress.Reporter:
    """Live progress for a local run: counted in this process, or by its
    worker processes in a folder beside the run's log."""
    direct = plan.pipeline_options.view_as(DirectOptions)
    interval = float(config.get('progress_interval', progress.DEFAULT_INTERVAL_SECS))
    if interval <= 0:
        return progress.Reporter({}, [])   # turned off
    shared = None
    if direct.direct_running_mode == 'multi_processing':
        shared = run_logs.logs_dir() / f'{run_id}.progress'
    totals = plan.source.totals(job_class_lib.validate(plan.job), store.target)
    return progress.Reporter(totals, [
        lambda report: store.set_progress(run_id, report), *listeners], interval,
        shared_folder=shared)


def _cancel_message(store: runs.RunStore, run_id: str, stop: stops.Stop) -> str:
    """`Canceled by USER.` when `cancel_run` said who (it notes that before
    it signals), as the old framework's cancel message read."""
    try:
        canceled_by = store.get(run_id).canceled_by
    except Exception:  # pylint: disable=broad-except
        canceled_by = None
    return f'Canceled by {canceled_by}.' if canceled_by else f'Canceled: {stop.reason}'


def _record_end(store: runs.RunStore, run_id: str, status: str,
                **fields: Any) -> runs.RunRecord:
    """Record how the run ended; if the Datastore is gone, keep the end on
    this machine for the next reader to record (run_logs.save_end)."""
    host = os.environ.get(emulator.EMULATOR_HOST_ENV)
    try:
        if host and not emulator.is_serving(host):
            raise ConnectionError(f'the emulator on {host} does not answer')
        return store.transition(run_id, status, **fields)
    except runs.InvalidTransitionError:
        return store.get(run_id)  # canceled meanwhile: that end stands
    except Exception as error:  # pylint: disable=broad-except
        saved = run_logs.save_end(run_id, status, fields)
        print(f'Could not record that run {run_id} ended {status} '
              f'({failures.describe(error)}); the next command that reads it '
              f'records that end (kept in {saved}).', file=sys.stderr)
        record = runs.RunRecord(run_id=run_id, job_name=run_id.split('-')[0],
                                status=status)
        for name, value in fields.items():
            setattr(record, name, value)
        record.log_file = str(run_logs.log_path(run_id))
        return record


# Runners other than the local ones: how to cancel a run on the service that
# runs it.
CANCELERS: dict = dict.fromkeys(options_lib.DATAFLOW_RUNNERS, dataflow.cancel)


def cancel_run(store: runs.RunStore, run_id: str,
               user_id: Optional[str] = None,
               wait_secs: float = 30.0) -> runs.RunRecord:
    """Stop a run wherever it runs, and end its record `canceled`.

    A local run in another process on this machine gets SIGTERM, so that its
    own process records the cancel after the pipeline has stopped.
    """
    record = store.get(run_id)
    if record.is_terminal:
        raise runs.InvalidTransitionError(
            f'Run {run_id} already ended ({record.status}); nothing to cancel.')
    reason = f'Canceled by {user_id or "an operator"}.'
    if record.status == runs.STARTED and not record.is_local:
        return CANCELERS[record.runner](store, record, reason, user_id)
    if (record.status == runs.STARTED and record.pid
            and record.host == socket.gethostname()
            and record.pid != os.getpid()):
        # Its own process records the cancel (and calls the cancel hooks)
        # once its pipeline has stopped; it reads who canceled from here.
        store.update(run_id, canceled_by=user_id or 'an operator')
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_secs
        while time.monotonic() < deadline:
            record = store.get(run_id)
            if record.is_terminal:
                return record
            time.sleep(0.2)
    return store.transition(run_id, runs.CANCELED, canceled_by=user_id,
                            error=reason)
