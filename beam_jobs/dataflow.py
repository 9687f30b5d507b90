"""Runs on Dataflow: submit, follow, cancel.

The same pipeline a local run builds is submitted to Dataflow and left
running there; the run record keeps the job's id, project, region and the
endpoint it went to. Whoever reads the record later (`beam-jobs status`,
`Job.get_status_code`) brings its status up to date from the Dataflow API
(see `runs.REFRESHERS`), and `beam-jobs cancel` asks the same service to
cancel the job. The pipeline writes its own output to the Datastore, as local
runs do, so a finished job's output is already where `beam-jobs output`
looks.
"""

from __future__ import annotations

import logging
import re
from typing import Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import GoogleCloudOptions
from apache_beam.options.pipeline_options import PipelineOptions
from google.api_core import client_options as client_options_lib
from google.api_core import exceptions as api_exceptions
from google.auth import credentials as auth_credentials

from beam_jobs import failures
from beam_jobs import options as options_lib
from beam_jobs import runs
from beam_jobs.transforms import ERROR_PREFIX

RUNNER = 'DataflowRunner'
CONSOLE_URL = ('https://console.cloud.google.com/dataflow/jobs/'
               '{region}/{job_id}?project={project}')
# Dataflow job names match [a-z]([-a-z0-9]*[a-z0-9])?; label values are at
# most 63 of [-_a-z0-9]. Names are kept to 63 as well, so one fits the other.
MAX_NAME_CHARS = 63
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
_COUNTED = re.compile(r'\((\d+)x\) (.*)', re.DOTALL)
_TRUNCATED = re.compile(r'<TRUNCATED: (\d+) more lines')
_LOG = logging.getLogger(__name__)


class DataflowError(failures.ClearError):
    """Dataflow refused a request, or the options cannot make a Dataflow run."""


def _reason(error: api_exceptions.GoogleAPICallError) -> str:
    """The service's own words, without the request line REST puts first."""
    message = re.sub(r'^[A-Z]+ \S+: ', '', str(error.message or ''))
    return f'{error.code} {message}'.strip()


def job_name_for(run_id: str) -> str:
    """A valid Dataflow job name for the run, unique as the run id is."""
    name = re.sub('[^a-z0-9]+', '-', run_id.lower()).strip('-')
    if not name[:1].isalpha():
        name = f'run-{name}'.rstrip('-')
    if len(name) > MAX_NAME_CHARS:
        # Keep the run id's unique tail (time and random part); cut the job.
        tail = '-'.join(name.split('-')[-2:])[-(MAX_NAME_CHARS - 2):]
        head = name[:MAX_NAME_CHARS - len(tail) - 1].rstrip('-')
        name = f'{head}-{tail}'
    return name


def label_value(text: str) -> str:
    return re.sub('[^a-z0-9_-]+', '-', text.lower())[:MAX_NAME_CHARS]


def check(pipeline_options: PipelineOptions) -> None:
    """Refuse options that cannot make a Dataflow run, before anything exists."""
    cloud = pipeline_options.view_as(GoogleCloudOptions)
    where = 'under [tool.beam-jobs] in pyproject.toml (or BEAM_JOBS_{})'
    if not cloud.project:
        raise DataflowError(
            'A Dataflow run needs a Google Cloud project: pass --project, or '
            f'set `project` {where.format("PROJECT")}.')
    if not cloud.region:
        raise DataflowError(
            'A Dataflow run needs a region: pass --region (e.g. us-central1), '
            f'or set `region` {where.format("REGION")}.')
    for flag in ('temp_location', 'staging_location'):
        value = getattr(cloud, flag)
        if (value or flag == 'temp_location') and not str(value or '').startswith('gs://'):
            raise DataflowError(
                f'A Dataflow run needs --{flag} to be a Cloud Storage path '
                f'(gs://BUCKET/tmp), not {value!r}: pass one, or set '
                f'`bucket` {where.format("BUCKET")}.')
    check_credentials(pipeline_options)


NO_CREDENTIALS = (
    'No Google credentials were found on this machine, and {what} needs them: '
    'run `gcloud auth application-default login`, or set '
    'GOOGLE_APPLICATION_CREDENTIALS to a service account key file, then try '
    'again.')


def check_credentials(pipeline_options: PipelineOptions) -> None:
    """A Dataflow run without credentials would end in a raw traceback
    half-way through staging; refuse it first, saying how to log in.
    `--no_auth` (a local stand-in for Dataflow) needs none."""
    if pipeline_options.view_as(GoogleCloudOptions).no_auth:
        return
    import google.auth
    import google.auth.exceptions
    try:
        google.auth.default()
    except google.auth.exceptions.DefaultCredentialsError:
        raise DataflowError(NO_CREDENTIALS.format(what='a Dataflow run')) from None


def name_job(pipeline_options: PipelineOptions, run_id: str,
             job_name: str) -> None:
    """Name the Dataflow job after the run and label it with the job."""
    cloud = pipeline_options.view_as(GoogleCloudOptions)
    if not cloud.job_name:
        cloud.job_name = job_name_for(run_id)
    labels = list(cloud.labels or [])
    if not any(label.startswith('job=') for label in labels):
        labels.append(f'job={label_value(job_name)}')
    cloud.labels = labels


def submit(pipeline: beam.Pipeline, pipeline_options: PipelineOptions,
           store: runs.RunStore, run_id: str) -> runs.RunRecord:
    """Stage and submit the pipeline; record the job and return, not wait."""
    cloud = pipeline_options.view_as(GoogleCloudOptions)
    try:
        result = pipeline.run()
    except api_exceptions.GoogleAPICallError as error:
        raise DataflowError(
            f'Dataflow ({cloud.dataflow_endpoint}) refused the job: '
            f'{_reason(error)}. Check the project, region and '
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


def _output_counts(store: runs.RunStore, run_id: str) -> dict:
    """Output and failed-item counts, from the output the job stored.

    A local run takes them from the pipeline's counters; a Dataflow run's
    stored output says the same, counting each `(Nx) ` line N times.
    """
    try:
        lines = store.output(run_id)
    except RuntimeError:  # still being stored: leave the counts unset
        return {}
    total = errors = 0
    for line in lines:
        truncated = _TRUNCATED.match(line)
        if truncated:
            total += int(truncated.group(1))
            continue
        counted = _COUNTED.fullmatch(line)
        count, text = (int(counted.group(1)), counted.group(2)) if counted else (1, line)
        total += count
        errors += count if text.startswith(ERROR_PREFIX) else 0
    return {'output_line_count': total, 'error_count': errors}


def refresh(store: runs.RunStore, record: runs.RunRecord) -> runs.RunRecord:
    """Bring a started Dataflow run's record up to date with its job."""
    if record.status != runs.STARTED or not record.dataflow_job_id:
        return record
    try:
        state = job_state(record)
    except api_exceptions.GoogleAPICallError as error:
        _LOG.warning('Could not read the state of Dataflow job %s (%s); '
                     'showing run %s as last recorded.', record.dataflow_job_id,
                     _reason(error), record.run_id)
        return record
    if state not in _ENDS:
        return record
    status, error = _ENDS[state]
    fields = {'error': error.format(url=record.console_url)} if error else {}
    if status == runs.COMPLETED:
        fields.update(_output_counts(store, record.run_id))
    try:
        return store.transition(record.run_id, status, **fields)
    except runs.InvalidTransitionError:  # someone else recorded the end first
        return store.get(record.run_id)


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
                f'({_reason(error)}): cancel it in the console '
                f'({record.console_url}), then run `beam-jobs cancel '
                f'{record.run_id}` again.') from error
    try:
        return store.transition(record.run_id, runs.CANCELED,
                                canceled_by=user_id, error=reason)
    except runs.InvalidTransitionError:
        return store.get(record.run_id)


for _runner in options_lib.DATAFLOW_RUNNERS:
    runs.REFRESHERS[_runner] = refresh
