"""A local stand-in for the Dataflow REST API (v1b3), for tests.

Beam talks REST to it when given `--dataflow_endpoint=http://localhost:PORT
--no_auth`, and so does beam-jobs' Dataflow backend. It keeps the jobs it is
sent and answers, in the API's documented shapes:

    GET  …/jobs/ID                   the job: its state and times
    GET  …/jobs/ID/metrics           JobMetrics {metricTime, metrics: [MetricUpdate]}
    GET  …/jobs/ID/messages          {jobMessages: [JobMessage]}, by minimumImportance
    GET  …/jobs/ID/executionDetails  JobExecutionDetails {stages: [StageSummary]}
    PUT  …/jobs/ID                   requestedState CANCELLED cancels it

A test moves a job's state with `set_state`, or plays a script
(`play(job_id, [Snapshot, ...])`, or `play_next([Snapshot, ...])` for the
next job created, before it exists): each GET of the job moves it to the next
snapshot (then stays at the last), whose state, metrics, messages and stages
the other calls answer with: a job whose counters grow between calls and
that completes, or one that fails with an error message. Every request is
recorded, so a test can assert on what reached the service; `fail_with`
makes it answer errors the way Google APIs do. tests/conftest.py loads this
module as a pytest plugin: its `stub` fixture is a started stand-in.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from http import server
from typing import Any, Optional

import pytest

from google.cloud.dataflow_v1beta3 import JobState

_JOBS = re.compile(r'^/v1b3/projects/(?P<project>[^/]+)/locations/'
                   r'(?P<region>[^/]+)/jobs(?:/(?P<job_id>[^/?:]+))?'
                   r'(?:/(?P<part>metrics|messages|executionDetails))?(?:\?(?P<query>.*))?$')
_IMPORTANCE = {'JOB_MESSAGE_DEBUG': 1, 'JOB_MESSAGE_DETAILED': 2, 'JOB_MESSAGE_BASIC': 3,
               'JOB_MESSAGE_WARNING': 4, 'JOB_MESSAGE_ERROR': 5}
_IMPORTANCE_NUMBERS = {1: 'JOB_MESSAGE_DEBUG', 2: 'JOB_MESSAGE_DETAILED',
                       5: 'JOB_MESSAGE_BASIC', 3: 'JOB_MESSAGE_WARNING',
                       4: 'JOB_MESSAGE_ERROR'}
NOW = '2026-01-01T10:00:00Z'
_STATUS_NAMES = {400: 'INVALID_ARGUMENT', 403: 'PERMISSION_DENIED',
                 404: 'NOT_FOUND', 409: 'ALREADY_EXISTS', 500: 'INTERNAL'}


@dataclasses.dataclass
class Request:
    method: str
    path: str
    body: Optional[dict]


@dataclasses.dataclass
class Snapshot:
    """A job as the service shows it at one moment of a script."""

    state: str = 'JOB_STATE_RUNNING'
    metrics: list = dataclasses.field(default_factory=list)
    messages: list = dataclasses.field(default_factory=list)
    stages: list = dataclasses.field(default_factory=list)
    time: str = NOW


def counter(name: str, value: int, namespace: str = 'beam_jobs',
            tentative: bool = False, step: str = 's2') -> dict:
    """A user counter as a MetricUpdate (attempted when `tentative`)."""
    context = {'namespace': namespace, 'step': step}
    if tentative:
        context['tentative'] = 'true'
    return {'name': {'origin': 'user', 'name': name, 'context': context},
            'kind': 'Sum', 'cumulative': True, 'scalar': value, 'updateTime': NOW}


def service_metric(name: str, value: float) -> dict:
    return {'name': {'origin': 'dataflow/v1b3', 'name': name, 'context': {}},
            'kind': 'Sum', 'cumulative': True, 'scalar': value, 'updateTime': NOW}


def message(text: str, importance: str = 'JOB_MESSAGE_ERROR', time: str = NOW) -> dict:
    return {'id': str(abs(hash((text, time)))), 'time': time, 'messageText': text,
            'messageImportance': importance}


def stage(stage_id: str, state: str) -> dict:
    return {'stageId': stage_id, 'state': f'EXECUTION_STATE_{state.upper()}',
            'startTime': NOW}


def state_name(value: Any) -> str:
    """A job state as its name, whether sent as a name or (REST) a number."""
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return JobState(int(value)).name
    return value


def _minimum_importance(query: str) -> int:
    for pair in query.split('&'):
        name, _, value = pair.partition('=')
        if name == 'minimumImportance':
            if value.isdigit():
                value = _IMPORTANCE_NUMBERS.get(int(value), 'JOB_MESSAGE_DEBUG')
            return _IMPORTANCE.get(value, 0)
    return 0


class DataflowStub:
    """The stand-in service: start it, point Beam at `endpoint`, stop it."""

    def __init__(self):
        self.requests: list[Request] = []
        self.jobs: dict[str, dict] = {}
        self.fail_with: Optional[tuple[int, str]] = None
        self.scripts: dict[str, list[Snapshot]] = {}
        self.position: dict[str, int] = {}
        self.next_scripts: list[list[Snapshot]] = []
        self._lock = threading.Lock()
        self._httpd = server.ThreadingHTTPServer(('localhost', 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        daemon=True)

    @property
    def endpoint(self) -> str:
        return f'http://localhost:{self._httpd.server_address[1]}'

    def start(self) -> 'DataflowStub':
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def set_state(self, job_id: str, state: str) -> None:
        with self._lock:
            self.jobs[job_id]['currentState'] = state

    def play(self, job_id: str, snapshots: list[Snapshot]) -> None:
        """From the next GET of the job on, show it as `snapshots`, one a GET."""
        with self._lock:
            self.scripts[job_id] = list(snapshots)
            self.position[job_id] = -1

    def play_next(self, snapshots: list[Snapshot]) -> None:
        """Play `snapshots` for the next job created (queued: one a job)."""
        with self._lock:
            self.next_scripts.append(list(snapshots))

    def _snapshot(self, job_id: str) -> Optional[Snapshot]:
        script = self.scripts.get(job_id)
        if not script:
            return None
        return script[max(0, self.position[job_id])]

    def requests_of(self, method: str) -> list[Request]:
        return [request for request in self.requests if request.method == method]

    def _answer(self, method: str, path: str,
                body: Optional[dict]) -> tuple[int, dict]:
        with self._lock:
            self.requests.append(Request(method, path, body))
            if self.fail_with:
                code, message = self.fail_with
                return code, {'error': {'code': code, 'message': message,
                                        'status': _STATUS_NAMES.get(code, 'UNKNOWN')}}
            match = _JOBS.match(path)
            if not match:
                return 404, {'error': {'code': 404, 'status': 'NOT_FOUND',
                                       'message': f'No such resource: {path}'}}
            job_id = match['job_id']
            if method == 'POST' and not job_id:
                job_id = f'2026-01-01_00_00_00-{len(self.jobs) + 1}'
                self.jobs[job_id] = {
                    'id': job_id, 'createTime': '2026-01-01T09:49:00Z',
                    'startTime': '2026-01-01T09:50:00Z', 'projectId': match['project'],
                    'location': match['region'], 'name': body.get('name'),
                    'clientRequestId': body.get('clientRequestId'),
                    'labels': body.get('labels', {}),
                    'type': body.get('type'),
                    'currentState': 'JOB_STATE_PENDING',
                }
                if self.next_scripts:
                    self.scripts[job_id] = self.next_scripts.pop(0)
                    self.position[job_id] = -1
                return 200, self.jobs[job_id]
            if job_id not in self.jobs:
                return 404, {'error': {'code': 404, 'status': 'NOT_FOUND',
                                       'message': f'No job {job_id}.'}}
            job = self.jobs[job_id]
            part = match['part']
            if method == 'GET' and not part and job_id in self.scripts:
                self.position[job_id] = min(self.position[job_id] + 1,
                                            len(self.scripts[job_id]) - 1)
                now = self._snapshot(job_id)
                job['currentState'], job['currentStateTime'] = now.state, now.time
            snapshot = self._snapshot(job_id) or Snapshot(job['currentState'])
            if part == 'metrics':
                return 200, {'metricTime': snapshot.time, 'metrics': snapshot.metrics}
            if part == 'executionDetails':
                return 200, {'stages': snapshot.stages}
            if part == 'messages':
                wanted = _minimum_importance(match['query'] or '')
                return 200, {'jobMessages': [
                    m for m in snapshot.messages
                    if _IMPORTANCE[m['messageImportance']] >= wanted]}
            if method == 'PUT':
                requested = state_name((body or {}).get('requestedState'))
                if requested == 'JOB_STATE_CANCELLED':
                    job['currentState'] = 'JOB_STATE_CANCELLED'
                    self.scripts.pop(job_id, None)   # a script stops with it
            return 200, job

    def _handler(self):
        stub = self

        class Handler(server.BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get('Content-Length') or 0)
                raw = self.rfile.read(length) if length else b''
                body = json.loads(raw) if raw else None
                code, answer = stub._answer(self.command, self.path, body)  # pylint: disable=protected-access
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _serve

            def log_message(self, *args):  # quiet test output
                pass

        return Handler


@pytest.fixture
def stub():
    """A stand-in serving on a free loopback port for one test."""
    service = DataflowStub().start()
    try:
        yield service
    finally:
        service.stop()
