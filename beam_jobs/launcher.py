"""A run's lifecycle: record it, build its pipeline, run it, record the end.

Every way of starting a job (`Job.enqueue`, `beam-jobs run`) comes here, and
every way a run can end (success, an exception, Ctrl-C, `beam-jobs cancel`
sending SIGTERM) leaves the record in a terminal status with the reason.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any, Iterator, Mapping, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import GoogleCloudOptions
from apache_beam.runners.runner import PipelineState

from beam_jobs import dataflow
from beam_jobs import datastore
from beam_jobs import emulator
from beam_jobs import job_class as job_class_lib
from beam_jobs import options as options_lib
from beam_jobs import output
from beam_jobs import runs
from beam_jobs.transforms import DEFAULT_SHARD_COUNT
from beam_jobs.transforms import RunJob


class RunCanceledError(Exception):
    """The run was asked to stop (Ctrl-C or `beam-jobs cancel`)."""


class _StopRun(BaseException):
    """Raised by our signal handlers. A BaseException, so job code's
    `except Exception` cannot swallow it as one more failed item."""


@contextlib.contextmanager
def _stop_on_signals(requested: list) -> Iterator[None]:
    """Turn SIGTERM (`beam-jobs cancel`) and SIGINT (Ctrl-C) into a stop.

    Beam may wrap whatever the handler raises in its own error, so the
    reason is also noted in `requested`: that, not the exception's type,
    tells the caller the run was canceled rather than failed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reasons = {signal.SIGTERM: 'stopped by SIGTERM (beam-jobs cancel)',
               signal.SIGINT: 'interrupted (Ctrl-C)'}

    def handler(signum, frame):
        if not requested:
            requested.append(reasons[signum])
            raise _StopRun(reasons[signum])
    previous = {sig: signal.signal(sig, handler) for sig in reasons}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


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


def build_pipeline(job: type, run_id: str, params: Mapping[str, Any],
                   shard_count: int, pipeline_options,
                   target: datastore.Target) -> beam.Pipeline:
    """The job's pipeline, ending in the sink that stores its output."""
    pipeline = beam.Pipeline(options=pipeline_options)
    _ = (
        pipeline
        | RunJob(job, params, shard_count, target.project, target.namespace,
                 with_order=True)
        | 'Store output' >> output.StoreOutput(run_id, target)
    )
    return pipeline


def check_shard_count(shard_count: Optional[int]) -> int:
    """The shard count to use; bad ones are refused before a run starts."""
    if shard_count is None:
        return DEFAULT_SHARD_COUNT
    if isinstance(shard_count, bool) or not isinstance(shard_count, int) or shard_count < 1:
        raise ValueError(f'shard_count must be a positive whole number, not '
                         f'{shard_count!r}: it is how many key ranges each '
                         'Datastore read is split into (default 8).')
    return shard_count


def run_store(pipeline_args: Sequence[str] = (),
              namespace: Optional[str] = None) -> runs.RunStore:
    """The run records of the Datastore that runs with these flags use.

    A local run's: the emulator that DATASTORE_EMULATOR_HOST names, else the
    project's long-lived one, else one started for this process. A Dataflow
    run never starts an emulator: its records live in the Datastore of its
    project (or of the emulator DATASTORE_EMULATOR_HOST names, as in tests).
    """
    try:
        pipeline_options = options_lib.pipeline_options(pipeline_args)
    except ValueError:  # bad flags: run_job records them as the run's failure
        pipeline_options = options_lib.pipeline_options()
    project = None
    if options_lib.is_dataflow(pipeline_options):
        project = pipeline_options.view_as(GoogleCloudOptions).project
    else:
        emulator.ensure_environment()
    return runs.RunStore(datastore.Target.from_environment(project, namespace))


def _failure_text(error: BaseException) -> str:
    lines = traceback.format_exception_only(type(error), error)
    return ''.join(lines).strip()[-4000:]


def run_job(job: type, *, run_id: Optional[str] = None,
            params: Optional[Mapping[str, Any]] = None,
            shard_count: Optional[int] = None,
            pipeline_args: Sequence[str] = (),
            target: Optional[datastore.Target] = None) -> runs.RunRecord:
    """Run `job` to the end and return its final record.

    A job class that cannot run is refused before a record is touched. A run
    that fails is recorded `failed` with the reason and returned, not raised;
    a canceled one is recorded `canceled` and RunCanceledError is raised.
    A Dataflow run is submitted and its record returned `started`, with the
    Dataflow job id and console link: it is followed from the record.
    """
    job_class_lib.validate(job)
    params = dict(params or {})
    shard_count = check_shard_count(shard_count)
    try:
        pipeline_options = options_lib.pipeline_options(pipeline_args)
        flag_project = pipeline_options.view_as(GoogleCloudOptions).project
    except ValueError as error:
        pipeline_options, flag_project, bad_flags = None, None, error
    else:
        bad_flags = None
    target = target or datastore.Target.from_environment(flag_project)
    store = runs.RunStore(target)
    if run_id is None:
        run_id = store.create(job_class_lib.job_name(job)).run_id
    if bad_flags is not None:
        return store.transition(run_id, runs.FAILED, error=str(bad_flags),
                                params=params, shard_count=shard_count)
    store.transition(run_id, runs.QUEUED, shard_count=shard_count,
                     params=params,
                     runner=options_lib.runner_name(pipeline_options))
    try:
        if options_lib.is_dataflow(pipeline_options):
            dataflow.prepare(pipeline_options, run_id,
                             job_class_lib.job_name(job))
        pipeline = build_pipeline(job, run_id, params, shard_count,
                                  pipeline_options, target)
    except Exception as error:  # pylint: disable=broad-except
        return store.transition(run_id, runs.FAILED, error=_failure_text(error))
    store.transition(run_id, runs.STARTED)
    stop_requested: list = []
    try:
        with _stop_on_signals(stop_requested):
            if options_lib.is_dataflow(pipeline_options):
                # Submitted and left running: readers of the record follow
                # the job from here (see dataflow.refresh).
                return dataflow.submit(pipeline, pipeline_options, store, run_id)
            result = pipeline.run()
            state = result.wait_until_finish()
    except BaseException as error:  # pylint: disable=broad-except
        if stop_requested or isinstance(error, KeyboardInterrupt):
            reason = (stop_requested or ['interrupted (Ctrl-C)'])[0]
            _record_end(store, run_id, runs.CANCELED, error=f'Canceled: {reason}')
            raise RunCanceledError(reason) from None
        record = _record_end(store, run_id, runs.FAILED, error=_failure_text(error))
        if not isinstance(error, Exception):
            raise
        return record
    if state != PipelineState.DONE:
        return _record_end(store, run_id, runs.FAILED,
                           error=f'The pipeline ended in state {state}.')
    counters = collect_counters(result, job)
    return _record_end(store, run_id, runs.COMPLETED, counters=counters,
                       error_count=counters.get('errors', 0),
                       output_line_count=counters.get('output_lines', 0))


def _record_end(store: runs.RunStore, run_id: str, status: str,
                **fields: Any) -> runs.RunRecord:
    """Record how the run ended; if the Datastore is gone, say so and go on.

    The record then still reads `started`; the next read finds its process
    gone and marks it failed (see RunStore.get).
    """
    try:
        return store.transition(run_id, status, **fields)
    except runs.InvalidTransitionError:
        return store.get(run_id)  # canceled meanwhile: that end stands
    except Exception as error:  # pylint: disable=broad-except
        print(f'Could not record that run {run_id} ended {status} '
              f'({_failure_text(error)}); it will be marked failed when next '
              'read.', file=sys.stderr)
        record = runs.RunRecord(run_id=run_id, job_name=run_id.split('-')[0],
                                status=status)
        for name, value in fields.items():
            setattr(record, name, value)
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
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_secs
        while time.monotonic() < deadline:
            record = store.get(run_id)
            if record.is_terminal:
                if record.status == runs.CANCELED:
                    return store.update(run_id, canceled_by=user_id,
                                        error=reason)
                return record
            time.sleep(0.2)
    return store.transition(run_id, runs.CANCELED, canceled_by=user_id,
                            error=reason)
