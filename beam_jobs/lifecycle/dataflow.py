"""The Dataflow backend: submit, poll, cancel.

The same pipeline a local run builds is submitted to Dataflow and left
running there; the run record keeps the job's id, project, region and the
endpoint it went to, and the totals its progress is measured against.

Whoever follows the run later (follow.py: `beam-jobs status`, the console,
a rehearsal, `get_status_code`) reaches `poll` here, which brings its record
up to date: it asks the API (dataflow_api.py) for the job's state, metrics
and stages, and once it ends for its messages; dataflow_fields.py turns the
answers into the record's fields (counters, progress, usage, the cause of a
failure). Polling is polite: at most one poll per run every
`follow_interval` seconds (default 10), whoever asks, each bounded by a few
seconds; an API error is kept in the record beside its last good figures.

The pipeline writes its own output to the Datastore, as local runs do, so a
finished job's output is already where `beam-jobs output` looks.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Mapping, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import GoogleCloudOptions
from apache_beam.options.pipeline_options import PipelineOptions
from google.api_core import exceptions as api_exceptions

from beam_jobs import config
from beam_jobs import job_class as job_class_lib
from beam_jobs import progress
from beam_jobs.lifecycle import backend as backend_lib
from beam_jobs.lifecycle import dataflow_api
from beam_jobs.lifecycle import dataflow_fields
from beam_jobs.lifecycle import ending
from beam_jobs.lifecycle import estimate as estimate_lib
from beam_jobs.lifecycle import stops
from beam_jobs.lifecycle.dataflow_settings import (  # noqa: F401  (the backend's words)
    CONSOLE_URL, NO_CREDENTIALS, DataflowError, check, name_job, reason_of)
from beam_jobs.lifecycle.planning import RunPlan
from beam_jobs.records import runs

RUNNER = 'DataflowRunner'
API_TIMEOUT_SECS = 30.0
# How often any reader may ask Dataflow about one run (the `follow_interval`
# setting), and how long one poll may take in all.
FOLLOW_EVERY_SECS = 10.0
FOLLOW_BUDGET_SECS = 6.0
# Dataflow's final states and what they mean for a run; every other state
# (pending, queued, running, cancelling, ...) leaves the run `started`.
_ENDS = {
    'JOB_STATE_DONE': (runs.COMPLETED, None),
    'JOB_STATE_FAILED': (runs.FAILED, None),   # the cause: dataflow_fields.failures
    'JOB_STATE_CANCELLED': (runs.CANCELED, 'The Dataflow job was cancelled '
                            'outside beam-jobs (console: {url}).'),
    'JOB_STATE_DRAINED': (runs.CANCELED, 'The Dataflow job was drained: it '
                          'stopped before reading all its input; rerun it.'),
    'JOB_STATE_UPDATED': (runs.CANCELED, 'The Dataflow job was replaced by '
                          'another job (console: {url}).'),
}
_SERVICE_ERRORS = (api_exceptions.GoogleAPICallError, api_exceptions.RetryError)
_LOG = logging.getLogger(__name__)


def follow_every_secs() -> float:
    return float(config.get('follow_interval', FOLLOW_EVERY_SECS))


def submit(pipeline: beam.Pipeline, pipeline_options: PipelineOptions,
           store: runs.RunStore, run_id: str,
           totals: Mapping[str, Optional[int]]) -> runs.RunRecord:
    """Stage and submit the pipeline; record the job and return, not wait."""
    cloud = pipeline_options.view_as(GoogleCloudOptions)
    try:
        result = pipeline.run()
    except api_exceptions.GoogleAPICallError as error:
        raise DataflowError(
            f'Dataflow ({cloud.dataflow_endpoint}) refused the job: '
            f'{reason_of(error)}. Check the project, region and '
            'your permissions there, then run the job again.') from error
    job_id = getattr(result, 'job_id')() if getattr(result, 'has_job', False) else None
    if not job_id:
        raise DataflowError(
            'Beam created no Dataflow job (was --dry_run or '
            '--template_location given?): beam-jobs follows only jobs it '
            'submits, so run it without them.')
    record = store.update(
        run_id, dataflow_job_id=job_id, dataflow_project=cloud.project,
        dataflow_region=cloud.region,
        dataflow_endpoint=cloud.dataflow_endpoint,
        console_url=CONSOLE_URL.format(region=cloud.region, job_id=job_id,
                                       project=cloud.project),
        progress={'read': {kind: 0 for kind in totals}, 'total': totals,
                  'updated_msec': runs.now_msec()})
    if record.status == runs.CANCELED:
        # Canceled while it was being submitted: the job must not run on.
        dataflow_api.cancel(record, API_TIMEOUT_SECS)
    return record


class _Budget:
    """What is left of one poll's time, for each call's timeout."""

    def __init__(self, seconds: float):
        self._deadline = time.monotonic() + seconds

    def left(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise api_exceptions.DeadlineExceeded(
                f'Dataflow took longer than {FOLLOW_BUDGET_SECS:g} s to answer')
        return left


def poll(store: runs.RunStore, record: runs.RunRecord,
         force: bool = False) -> runs.RunRecord:
    """Bring a started Dataflow run's record up to date with its job (at most
    one poll per `follow_interval`, whoever asks, unless `force`); ended,
    with the job's hooks, once the job has."""
    if not record.dataflow.job_id:
        # Nothing remote to ask yet: a submission whose process died before
        # it recorded the job id is an orphan like a local run.
        return backend_lib.end_if_orphaned(store, record)
    if record.status != runs.STARTED:
        return record
    every_msec = 0 if force else int(follow_every_secs() * 1000)
    followed = record.dataflow.followed_msec
    if followed and runs.now_msec() - followed < every_msec:
        return record       # asked recently: by this reader or another
    claimed = store.claim_follow(record.run_id, every_msec)
    if claimed is None:
        return store.get(record.run_id)     # someone polled it just now
    budget = _Budget(FOLLOW_BUDGET_SECS)
    try:
        job = dataflow_api.job(claimed, budget.left())
        metrics = dataflow_api.metrics(claimed, budget.left())
        stages = _stages(claimed, budget)
        ended = job.state in _ENDS
        fields = dataflow_fields.record_fields(claimed, metrics, stages, committed=ended)
        if ended:
            fields.update(_ended(store, claimed, job, metrics, budget))
        over = None if ended else estimate_lib.over_budget(claimed.dataflow.budget, fields['usage'])
        if over:
            # Past its budget: stopped now, not when someone notices.
            dataflow_api.cancel(claimed, budget.left())
    except _SERVICE_ERRORS as error:
        text = reason_of(error) if isinstance(error, api_exceptions.GoogleAPICallError) \
            else str(error)
        _LOG.warning('Could not follow Dataflow job %s (%s); showing run %s as '
                     'last recorded.', record.dataflow.job_id, text, record.run_id)
        return store.update(record.run_id, follow_error=(
            f'Dataflow did not answer ({text}) at '
            f'{time.strftime("%H:%M:%S")}: these figures are the last it gave.'))
    if over:
        return ending.end_unless_ended(store, record.run_id, runs.FAILED,
                                       error=over, **fields)
    if not ended:
        return store.update(record.run_id, **fields)
    status = _ENDS[job.state][0]
    return ending.end_unless_ended(store, record.run_id, status, **fields)


def _stages(record: runs.RunRecord, budget: _Budget) -> Optional[list[dict[str, str]]]:
    """Stage states, where the service gives them (None where it does not)."""
    try:
        return dataflow_api.stages(record, budget.left())
    except (api_exceptions.NotFound, api_exceptions.MethodNotImplemented,
            api_exceptions.InvalidArgument):
        return None


def _ended(store: runs.RunStore, record: runs.RunRecord, job: dataflow_api.Job,
           metrics: list[dataflow_api.Metric], budget: _Budget) -> dict[str, Any]:
    """What a run's end adds: cost and size, its output's counts, the cause."""
    status, template = _ENDS[job.state]
    fields: dict[str, Any] = {}
    try:
        workers = dataflow_fields.most_workers(dataflow_api.messages(
            record, 'JOB_MESSAGE_BASIC', budget.left()))
    except _SERVICE_ERRORS:
        workers = None
    elapsed = ((job.state_msec - job.start_msec) / 1000
               if job.state_msec and job.start_msec else None)
    fields['usage'] = {'workers': workers, 'elapsed_seconds': elapsed,
                       'vcpu_seconds': None, **dataflow_fields.usage(record, metrics)}
    if template:
        fields['error'] = template.format(url=record.dataflow.console_url)
    if status == runs.FAILED:
        trimmed = dataflow_fields.failures(dataflow_api.messages(
            record, 'JOB_MESSAGE_ERROR', budget.left()))
        fields['failure_messages'] = trimmed
        fields['error'] = dataflow_fields.failure_sentence(trimmed, record.dataflow.console_url)
    if status == runs.COMPLETED:
        try:
            counts = store.output_counts(record.run_id)
        except RuntimeError:   # still being stored: leave the counts unset
            counts = None
        fields.update(counts.as_record_fields() if counts else {})
    return fields


def cancel(store: runs.RunStore, record: runs.RunRecord, reason: str,
           user_id: Optional[str]) -> runs.RunRecord:
    """Ask Dataflow to cancel the run's job, then end the record `canceled`.

    A run whose submission has not returned yet has no job id: its record is
    ended here, and `submit` cancels the job as soon as it has one.
    """
    if record.dataflow.job_id:
        try:
            dataflow_api.cancel(record, API_TIMEOUT_SECS)
        except api_exceptions.GoogleAPICallError as error:
            current = poll(store, record, force=True)
            if current.is_terminal:  # it ended on its own meanwhile
                return current
            raise DataflowError(
                f'Dataflow did not cancel job {record.dataflow.job_id} '
                f'({reason_of(error)}): cancel it in the console '
                f'({record.dataflow.console_url}), then run `beam-jobs cancel '
                f'{record.run_id}` again.') from error
    return ending.end_unless_ended(store, record.run_id, runs.CANCELED,
                                   canceled_by=user_id, error=reason)


class DataflowBackend(backend_lib.Backend):
    """Runs submitted to Dataflow and followed from their records."""

    def prepare(self, plan: RunPlan, run_id: str) -> None:
        name_job(plan.pipeline_options, run_id, job_class_lib.job_name(plan.job),
                 plan.gate)

    def launch(self, plan: RunPlan, store: runs.RunStore, run_id: str,
               pipeline: beam.Pipeline, listeners: Sequence[progress.Listener],
               stop_requested: list[stops.Stop]) -> runs.RunRecord:
        # Submitted and left running: followers of the record take it from
        # here, measuring its progress against what the source says it holds.
        totals = plan.source.totals(plan.models, plan.data_target(store.target),
                                    plan.namespaces)
        return submit(pipeline, plan.pipeline_options, store, run_id, totals)

    def follow(self, store: runs.RunStore, record: runs.RunRecord) -> runs.RunRecord:
        return poll(store, record)

    def cancel(self, store: runs.RunStore, record: runs.RunRecord,
               user_id: Optional[str]) -> runs.RunRecord:
        return cancel(store, record, f'Canceled by {user_id or "an operator"}.', user_id)
