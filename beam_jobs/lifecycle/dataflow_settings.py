"""Dataflow settings and names: what a run needs before anything is submitted.

The planner refuses options that cannot make a Dataflow run (no project,
region or Cloud Storage temp location; no credentials) before a record
exists, and names the Dataflow job after the run. Kept apart from the
backend (dataflow.py), which submits and follows.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

from apache_beam.options.pipeline_options import GoogleCloudOptions
from apache_beam.options.pipeline_options import PipelineOptions
from google.api_core import exceptions as api_exceptions

from beam_jobs import failures
from beam_jobs import refusals

CONSOLE_URL = ('https://console.cloud.google.com/dataflow/jobs/'
               '{region}/{job_id}?project={project}')
# Dataflow job names match [a-z]([-a-z0-9]*[a-z0-9])?; label values are at
# most 63 of [-_a-z0-9]. Names are kept to 63 as well, so one fits the other.
MAX_NAME_CHARS = 63


class DataflowError(refusals.Refused, failures.ClearError):
    """Dataflow refused a request, or the options cannot make a Dataflow run."""


def reason_of(error: api_exceptions.GoogleAPICallError) -> str:
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
    """A GCP label value: lowercase letters, digits, `_` and `-`, at most 63."""
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


def approver_label(gate: Mapping[str, Any]) -> str:
    """Who let the run through the production gate, as a label value:
    the approvers of its rehearsal, `skipped-by-NAME`, or `none` (a run the
    gate does not stop, or a gate turned off)."""
    if gate.get('approved_by'):
        return label_value('-'.join(gate['approved_by'])) or 'none'
    if gate.get('skipped_by'):
        return label_value(f'skipped-by-{gate["skipped_by"]}')
    return 'none'


def name_job(pipeline_options: PipelineOptions, run_id: str,
             job_name: str, gate: Optional[Mapping[str, Any]] = None) -> None:
    """Name the Dataflow job after the run, and label it so billing finds
    it: the job, the run and who approved it (`job=` too, as labelled before
    these). A label the user set on the command line wins."""
    cloud = pipeline_options.view_as(GoogleCloudOptions)
    if not cloud.job_name:
        cloud.job_name = job_name_for(run_id)
    labels = list(cloud.labels or [])
    ours = {'job': label_value(job_name), 'beam-jobs-job': label_value(job_name),
            'beam-jobs-run': job_name_for(run_id),   # keeps the unique tail
            'beam-jobs-approved-by': approver_label(gate or {})}
    for key, value in ours.items():
        if not any(label.startswith(f'{key}=') for label in labels):
            labels.append(f'{key}={value}')
    cloud.labels = labels
