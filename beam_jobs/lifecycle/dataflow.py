"""The Dataflow backend: submit, follow, cancel.

The same pipeline a local run builds is submitted to Dataflow and left
running there; the run record keeps the job's id, project, region and the
endpoint it went to. Whoever follows the run later (`beam-jobs status`, the
console, `Job.get_status_code`, through launcher.py) brings its record up to
date from the Dataflow API, and `beam-jobs cancel` asks the same service to
cancel the job. The pipeline writes its own output to the Datastore, as local
runs do, so a finished job's output is already where `beam-jobs output`
looks.
"""

from __future__ import annotations

import logging
import re
from typing import Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import GoogleCloudOptions
from apache_beam.options.pipeline_options import PipelineOptions
from google.api_core import client_options as client_options_lib
from google.api_core import exceptions as api_exceptions
from google.auth import credentials as auth_credentials

from beam_jobs import failures
from beam_jobs import job_class as job_class_lib
from beam_jobs import progress
from beam_jobs.lifecycle import backend as backend_lib
from beam_jobs.lifecycle import ending
from beam_jobs.lifecycle.dataflow_settings import (  # noqa: F401  (the backend's words)
    CONSOLE_URL, NO_CREDENTIALS, DataflowError, check, name_job, reason_of)
from beam_jobs.records import runs

RUNNER = 'DataflowRunner'
API_TIMEOUT_SECS = 30.0
# Dataflow's final states and what they mean for a run; every other state
# (pending, queued, running, cancelling, ...) leaves the run `started`.
_ENDS = {
    'JOB_STATE_DONE': (runs.COMPLETED, None),
    'JOB_STATE_FAILED': (runs.FAILED, 'The Dataflow job failed: its logs are '
                         'in the console ({url}); fix the cause and rerun.'),
    'JOB_STATE_CANCELLED': (runs.CANCELED, 'The Dataflow job was cancelled '
                            'outside beam-jobs (console: {url}).'),
    'JOB_STATE_DRAINED': (runs.CANCELED, 'The Dataflow job was drained: it '
                          'stopped before reading all its input; rerun it.'),
    'JOB_STATE_UPDATED': (runs.CANCELED, 'The Dataflow job was replaced by '
                          'another job (console: {url}).'),
}
_LOG = logging.getLogger(__name__)


def submit(pipeline: beam.Pipeline, pipeline_options: PipelineOptions,
           store: runs.RunStore, run_id: str) -> runs.RunRecord:
    """Stage and submit the pipeline; record the job and return, not wait."""
    cloud = pipeline_options.view_as(GoogleCloudOptions)
    try:
        result = pipeline.run()
    except api_exceptions.GoogleAPICallError as error:
        raise DataflowError(
            f'Dataflow ({cloud.dataflow_endpoint}) refused the job: '
            f'{reason_of(error)}. Check the project, region and '
            'your permissions there, then run the job again.') from error
    job_id = result.job_id() if getattr(result, 'has_job', False) else None
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
                                       project=cloud.project))
    if record.status == runs.CANCELED:
        # Canceled while it was being submitted: the job must not run on.
        _request_cancel(record)
    return record


def _jobs_client(endpoint: Optional[str]):
    """A Dataflow jobs client for the endpoint the run was submitted to.

    As Beam does: a plain-http (local) endpoint is spoken to over REST, and
    (being a stand-in) without credentials; Google's own over gRPC with the
    default credentials.
    """
    from google.cloud import dataflow_v1beta3 as dataflow_api  # heavy: only when used
    endpoint = (endpoint or '').strip().rstrip('/')
    credentials, transport, client_options = None, None, None
    if endpoint.startswith('http://'):
        credentials = auth_credentials.AnonymousCredentials()
        transport = 'rest'
    else:
        endpoint = re.sub('^https?://', '', endpoint)
    if endpoint:
        client_options = client_options_lib.ClientOptions(api_endpoint=endpoint)
    return dataflow_api.JobsV1Beta3Client(
        credentials=credentials, client_options=client_options,
        transport=transport)


def _request_cancel(record: runs.RunRecord) -> None:
    from google.cloud import dataflow_v1beta3 as dataflow_api
    _jobs_client(record.dataflow_endpoint).update_job(
        request=dataflow_api.UpdateJobRequest(
            project_id=record.dataflow_project,
            location=record.dataflow_region, job_id=record.dataflow_job_id,
            job=dataflow_api.Job(
                requested_state=dataflow_api.JobState.JOB_STATE_CANCELLED)),
        timeout=API_TIMEOUT_SECS)


def job_state(record: runs.RunRecord) -> str:
    """The job's current state on Dataflow, e.g. 'JOB_STATE_RUNNING'."""
    from google.cloud import dataflow_v1beta3 as dataflow_api
    job = _jobs_client(record.dataflow_endpoint).get_job(
        request=dataflow_api.GetJobRequest(
            project_id=record.dataflow_project,
            location=record.dataflow_region, job_id=record.dataflow_job_id),
        timeout=API_TIMEOUT_SECS)
    return dataflow_api.JobState(job.current_state).name


def refresh(store: runs.RunStore, record: runs.RunRecord) -> runs.RunRecord:
    """Bring a started Dataflow run's record up to date with its job."""
    if not record.dataflow_job_id:
        # Nothing remote to ask yet: a submission whose process died before
        # it recorded the job id is an orphan like a local run.
        return backend_lib.end_if_orphaned(store, record)
    if record.status != runs.STARTED:
        return record
    try:
        state = job_state(record)
    except api_exceptions.GoogleAPICallError as error:
        _LOG.warning('Could not read the state of Dataflow job %s (%s); '
                     'showing run %s as last recorded.', record.dataflow_job_id,
                     reason_of(error), record.run_id)
        return record
    if state not in _ENDS:
        return record
    status, error = _ENDS[state]
    fields = {'error': error.format(url=record.console_url)} if error else {}
    if status == runs.COMPLETED:
        try:
            counts = store.output_counts(record.run_id)
        except RuntimeError:   # still being stored: leave the counts unset
            counts = None
        fields.update(counts.as_record_fields() if counts else {})
    return ending.end_unless_ended(store, record.run_id, status, **fields)


def cancel(store: runs.RunStore, record: runs.RunRecord, reason: str,
           user_id: Optional[str]) -> runs.RunRecord:
    """Ask Dataflow to cancel the run's job, then end the record `canceled`.

    A run whose submission has not returned yet has no job id: its record is
    ended here, and `submit` cancels the job as soon as it has one.
    """
    if record.dataflow_job_id:
        try:
            _request_cancel(record)
        except api_exceptions.GoogleAPICallError as error:
            current = refresh(store, record)
            if current.is_terminal:  # it ended on its own meanwhile
                return current
            raise DataflowError(
                f'Dataflow did not cancel job {record.dataflow_job_id} '
                f'({reason_of(error)}): cancel it in the console '
                f'({record.console_url}), then run `beam-jobs cancel '
                f'{record.run_id}` again.') from error
    return ending.end_unless_ended(store, record.run_id, runs.CANCELED,
                                   canceled_by=user_id, error=reason)


class DataflowBackend(backend_lib.Backend):
    """Runs submitted to Dataflow and followed from their records."""

    def prepare(self, plan, run_id: str) -> None:
        name_job(plan.pipeline_options, run_id, job_class_lib.job_name(plan.job))

    def launch(self, plan, store: runs.RunStore, run_id: str,
               pipeline: beam.Pipeline, listeners: Sequence[progress.Listener],
               stop_requested: list) -> runs.RunRecord:
        # Submitted and left running: followers of the record take it from here.
        return submit(pipeline, plan.pipeline_options, store, run_id)

    def follow(self, store: runs.RunStore, record: runs.RunRecord) -> runs.RunRecord:
        return refresh(store, record)

    def cancel(self, store: runs.RunStore, record: runs.RunRecord,
               user_id: Optional[str]) -> runs.RunRecord:
        return cancel(store, record, f'Canceled by {user_id or "an operator"}.', user_id)
