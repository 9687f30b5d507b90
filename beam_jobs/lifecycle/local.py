"""The local backend: a run on this machine, on Beam's local runner, to its end.

Every way a local run can end leaves its record in a terminal status with the
reason: success, an exception, Ctrl-C, `beam-jobs cancel` sending SIGTERM,
its Datastore going away (stops.py). If that Datastore is gone, the end is
kept on this machine (run_logs.save_end) for the next reader to record. A
reader that finds the run's process gone ends it `failed` (`follow`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from typing import Any, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions
from apache_beam.runners.runner import PipelineState

from beam_jobs import config
from beam_jobs import counters as counters_lib
from beam_jobs import emulator
from beam_jobs import failures
from beam_jobs import progress
from beam_jobs import target as target_lib
from beam_jobs.lifecycle import ending
from beam_jobs.lifecycle import run_logs
from beam_jobs.lifecycle import stops
from beam_jobs.lifecycle.backend import Backend, end_if_orphaned
from beam_jobs.lifecycle.planning import RunPlan
from beam_jobs.records import runs

# How long `cancel` waits for the run's own process to record its end.
CANCEL_WAIT_SECS = 30.0


class LocalBackend(Backend):

    def launch(self, plan: RunPlan, store: runs.RunStore, run_id: str,
               pipeline: beam.Pipeline, listeners: Sequence[progress.Listener],
               stop_requested: list[stops.Stop]) -> runs.RunRecord:
        with stops.StopOnLostDatastore(target_lib.emulator_host(), stop_requested), \
                _progress(plan, store, run_id, listeners) as reporter:
            used = _Usage()
            result = pipeline.run()
            state = result.wait_until_finish()
            usage = used.so_far()
        if stop_requested:
            # The stop reached no step (it came as the last bundle ended):
            # the run was still asked to stop, and is recorded so.
            raise stops.StopRun(stop_requested[0].reason)
        if state != PipelineState.DONE:
            return self.end(store, run_id, runs.FAILED, job_name=plan.job_name,
                            error=f'The pipeline ended in state {state}.')
        counts = store.output_counts(run_id)
        return self.end(store, run_id, runs.COMPLETED, job_name=plan.job_name,
                        counters=counters_lib.from_beam_metrics(
                            result, plan.job_name, plan.kinds),
                        progress=reporter.final(), usage=usage,
                        **(counts.as_record_fields() if counts else {}))

    def end(self, store: runs.RunStore, run_id: str, status: str, *,
            job_name: str, **fields: Any) -> runs.RunRecord:
        """End the run; if its Datastore is gone, keep the end on this
        machine for the next reader to record (run_logs.save_end), and say
        it in a record of run `run_id` of `job_name` made here."""
        host = target_lib.emulator_host()
        try:
            if host and not emulator.is_serving(host):
                raise ConnectionError(f'the emulator on {host} does not answer')
            return ending.end_unless_ended(store, run_id, status, **fields)
        except Exception as error:  # pylint: disable=broad-except
            stop_reason = fields.pop('stop_reason', None)
            if status == runs.CANCELED and fields.get('error') is None:
                fields['error'] = f'Canceled: {stop_reason}'
            saved = run_logs.save_end(run_id, status, fields)
            print(f'Could not record that run {run_id} ended {status} '
                  f'({failures.describe(error)}); the next command that reads it '
                  f'records that end (kept in {saved}).', file=sys.stderr)
            record = runs.RunRecord(run_id=run_id, job_name=job_name, status=status)
            for name, value in fields.items():
                record.set(name, value)
            record.log_file = str(run_logs.log_path(run_id))
            return record

    def follow(self, store: runs.RunStore, record: runs.RunRecord) -> runs.RunRecord:
        return end_if_orphaned(store, record)

    def cancel(self, store: runs.RunStore, record: runs.RunRecord,
               user_id: Optional[str], wait_secs: float = CANCEL_WAIT_SECS) -> runs.RunRecord:
        """A run in another process on this machine gets SIGTERM, so that its
        own process records the cancel (and calls the cancel hooks) once its
        pipeline has stopped; it reads who canceled from the record."""
        if (record.status == runs.STARTED and record.pid
                and record.host == socket.gethostname() and record.pid != os.getpid()):
            store.update(record.run_id, canceled_by=user_id or 'an operator')
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, signal.SIGTERM)
            deadline = time.monotonic() + wait_secs
            while time.monotonic() < deadline:
                current = self.follow(store, store.get(record.run_id))
                if current.is_terminal:
                    return current
                time.sleep(0.2)
        return ending.end_unless_ended(store, record.run_id, runs.CANCELED,
                                       canceled_by=user_id,
                                       error=f'Canceled by {user_id or "an operator"}.')


class _Usage:
    """CPU and time a local run used: this process's CPU and that of its
    worker processes (`multi_processing`), not the emulator's (on Dataflow
    the Datastore's work is not billed as worker vCPU). What a rehearsal's
    estimate of a larger run is scaled from (lifecycle/estimate.py)."""

    def __init__(self) -> None:
        self._cpu, self._wall = self._cpu_now(), time.monotonic()

    @staticmethod
    def _cpu_now() -> float:
        times = os.times()
        return times.user + times.system + times.children_user + times.children_system

    def so_far(self) -> dict[str, float]:
        return {'cpu_seconds': round(self._cpu_now() - self._cpu, 3),
                'elapsed_seconds': round(time.monotonic() - self._wall, 3)}


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
    totals = plan.source.totals(plan.models, store.target, plan.namespaces)
    return progress.Reporter(totals, [
        lambda report: store.set_progress(run_id, report), *listeners], interval,
        shared_folder=shared)
