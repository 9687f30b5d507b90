"""Every call beam-jobs makes to the Dataflow API, answered as plain values.

    job          projects.locations.jobs.get: state and times
    metrics      projects.locations.jobs.getMetrics: MetricUpdates
    messages     projects.locations.jobs.messages.list
    stages       projects.locations.jobs.getExecutionDetails
    cancel       projects.locations.jobs.update, requestedState CANCELLED

Each reaches the endpoint the run was submitted to: Google's over gRPC with
the default credentials, a plain-http one (a local stand-in, as in the tests)
over REST without credentials, as Beam's own runner does. Each call is
bounded by `timeout` seconds: a follower (a console page) never waits long.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import types
from typing import Any, Optional

from google.api_core import client_options as client_options_lib
from google.auth import credentials as auth_credentials

from beam_jobs.records import runs

DEFAULT_TIMEOUT_SECS = 30.0


@dataclasses.dataclass(frozen=True)
class Job:
    state: str                       # e.g. 'JOB_STATE_RUNNING'
    start_msec: Optional[int]
    state_msec: Optional[int]        # when it reached its current state


@dataclasses.dataclass(frozen=True)
class Metric:
    origin: str
    name: str
    context: dict[str, str]
    scalar: Any                      # as _plain made it: a number, text, a flag

    @property
    def tentative(self) -> bool:
        return self.context.get('tentative') == 'true'


@dataclasses.dataclass(frozen=True)
class Message:
    text: str
    importance: str
    msec: Optional[int]


def _api() -> types.ModuleType:
    from google.cloud import dataflow_v1beta3   # heavy: only when used
    return dataflow_v1beta3


def _client_kwargs(endpoint: Optional[str]) -> dict[str, Any]:
    endpoint = (endpoint or '').strip().rstrip('/')
    kwargs: dict[str, Any] = {}
    if endpoint.startswith('http://'):
        kwargs.update(credentials=auth_credentials.AnonymousCredentials(),
                      transport='rest')
    else:
        endpoint = re.sub('^https?://', '', endpoint)
    if endpoint:
        kwargs['client_options'] = client_options_lib.ClientOptions(api_endpoint=endpoint)
    return kwargs


def _where(record: runs.RunRecord) -> dict[str, Optional[str]]:
    return {'project_id': record.dataflow.project, 'location': record.dataflow.region,
            'job_id': record.dataflow.job_id}


def _msec(timestamp: Optional[datetime.datetime]) -> Optional[int]:
    if not timestamp:
        return None
    try:
        return int(timestamp.timestamp() * 1000)
    except (AttributeError, ValueError, OSError):
        return None


def job(record: runs.RunRecord, timeout: float = DEFAULT_TIMEOUT_SECS) -> Job:
    api = _api()
    answer = api.JobsV1Beta3Client(**_client_kwargs(record.dataflow.endpoint)).get_job(
        request=api.GetJobRequest(**_where(record)), timeout=timeout)
    return Job(api.JobState(answer.current_state).name,
               _msec(answer.start_time) or _msec(answer.create_time),
               _msec(answer.current_state_time))


def _plain(value: Any) -> Any:
    """A protobuf Value (a metric's scalar) as a Python number or text (Any:
    protobuf is untyped, and proto-plus may have made it a Python value)."""
    if value is None:
        return None
    for field in ('number_value', 'string_value', 'bool_value'):
        try:
            if value.HasField(field):   # a raw google.protobuf Value
                return getattr(value, field)
        except (AttributeError, ValueError):
            break
    return value


def metrics(record: runs.RunRecord, timeout: float = DEFAULT_TIMEOUT_SECS) -> list[Metric]:
    api = _api()
    answer = api.MetricsV1Beta3Client(**_client_kwargs(record.dataflow.endpoint)).get_job_metrics(
        request=api.GetJobMetricsRequest(**_where(record)), timeout=timeout)
    return [Metric(update.name.origin, update.name.name, dict(update.name.context),
                   _plain(update.scalar))
            for update in answer.metrics]


def messages(record: runs.RunRecord, minimum_importance: str,
             timeout: float = DEFAULT_TIMEOUT_SECS, limit: int = 100) -> list[Message]:
    """The job's messages of at least `minimum_importance`
    (e.g. 'JOB_MESSAGE_ERROR'), oldest first, at most `limit`."""
    api = _api()
    pager = api.MessagesV1Beta3Client(**_client_kwargs(record.dataflow.endpoint)).list_job_messages(
        request=api.ListJobMessagesRequest(
            **_where(record), page_size=limit,
            minimum_importance=api.JobMessageImportance[minimum_importance]),
        timeout=timeout)
    found = []
    for message in pager.job_messages:   # the first page: enough for a person
        found.append(Message(message.message_text,
                             api.JobMessageImportance(message.message_importance).name,
                             _msec(message.time)))
    return sorted(found, key=lambda m: m.msec or 0)


def stages(record: runs.RunRecord,
           timeout: float = DEFAULT_TIMEOUT_SECS) -> list[dict[str, str]]:
    """`[{'name', 'state'}]` of the job's stages, as execution details give them."""
    api = _api()
    pager = api.MetricsV1Beta3Client(**_client_kwargs(record.dataflow.endpoint)).get_job_execution_details(
        request=api.GetJobExecutionDetailsRequest(**_where(record)), timeout=timeout)
    found: list[dict[str, str]] = []
    for stage in pager.stages:
        state = api.ExecutionState(stage.state).name
        found.append({'name': stage.stage_id,
                      'state': state.removeprefix('EXECUTION_STATE_').replace('_', ' ').lower()})
    return found


def cancel(record: runs.RunRecord, timeout: float = DEFAULT_TIMEOUT_SECS) -> None:
    api = _api()
    api.JobsV1Beta3Client(**_client_kwargs(record.dataflow.endpoint)).update_job(
        request=api.UpdateJobRequest(
            **_where(record),
            job=api.Job(requested_state=api.JobState.JOB_STATE_CANCELLED)),
        timeout=timeout)
