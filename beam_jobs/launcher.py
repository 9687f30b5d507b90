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

from beam_jobs import datastore
from beam_jobs import job_class as job_class_lib
from beam_jobs import options as options_lib
from beam_jobs import output
from beam_jobs import runs
from beam_jobs.transforms import DEFAULT_SHARD_COUNT
from beam_jobs.transforms import RunJob


class RunCanceledError(Exception):
    """The run was asked to stop (Ctrl-C or `beam-jobs cancel`)."""


@contextlib.contextmanager
def _cancel_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM (what `beam-jobs cancel` sends) into an exception here."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise RunCanceledError('stopped by SIGTERM (beam-jobs cancel)')
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def collect_counters(result, job_name: str) -> dict[str, int]:
    """The framework's and the job's own counters, summed over steps.

    Beam's IO counters (RPC successes, throttling) are left out: they speak
    of the plumbing, not of the job.
    """
    counters: dict[str, int] = {}
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
        | RunJob(job, params, shard_count, target.project, target.namespace)
        | 'Store output' >> output.StoreOutput(run_id, target)
    )
    return pipeline


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
    """
    job_class_lib.validate(job)
    params = dict(params or {})
    shard_count = int(shard_count or DEFAULT_SHARD_COUNT)
    pipeline_options = options_lib.pipeline_options(pipeline_args)
    target = target or datastore.Target.from_environment(
        pipeline_options.view_as(GoogleCloudOptions).project)
    store = runs.RunStore(target)
    if run_id is None:
        run_id = store.create(job_class_lib.job_name(job)).run_id
    store.transition(run_id, runs.QUEUED, shard_count=shard_count,
                     params=params,
                     runner=options_lib.runner_name(pipeline_options))
    try:
        pipeline = build_pipeline(job, run_id, params, shard_count,
                                  pipeline_options, target)
    except Exception as error:  # bad flags, a job the compiler refuses
        return store.transition(run_id, runs.FAILED, error=_failure_text(error))
    store.transition(run_id, runs.STARTED)
    try:
        with _cancel_on_sigterm():
            result = pipeline.run()
            state = result.wait_until_finish()
    except (KeyboardInterrupt, RunCanceledError) as error:
        reason = str(error) or 'interrupted (Ctrl-C)'
        _record_end(store, run_id, runs.CANCELED, error=f'Canceled: {reason}')
        raise RunCanceledError(reason) from error
    except Exception as error:  # pylint: disable=broad-except
        return _record_end(store, run_id, runs.FAILED, error=_failure_text(error))
    if state != PipelineState.DONE:
        return _record_end(store, run_id, runs.FAILED,
                           error=f'The pipeline ended in state {state}.')
    counters = collect_counters(result, job_class_lib.job_name(job))
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


# Runners other than the local ones register how to cancel a run on the
# service that runs it (the Dataflow module does).
CANCELERS: dict = {}


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
