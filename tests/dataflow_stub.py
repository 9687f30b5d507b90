"""A local stand-in for the Dataflow REST API (v1b3), for tests.

Beam talks REST to it when given `--dataflow_endpoint=http://localhost:PORT
--no_auth`. It keeps the jobs it is sent, answers GETs with each job's current
state (which a test moves with `set_state`), turns an update that requests
`JOB_STATE_CANCELLED` into that state, and records every request so a test
can assert on what reached the service. `fail_with` makes it answer errors
the way Google APIs do.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from http import server
from typing import Any, Optional

from google.cloud.dataflow_v1beta3 import JobState

_JOBS = re.compile(r'^/v1b3/projects/(?P<project>[^/]+)/locations/'
                   r'(?P<region>[^/]+)/jobs(?:/(?P<job_id>[^/?:]+))?(?:\?.*)?$')
_STATUS_NAMES = {400: 'INVALID_ARGUMENT', 403: 'PERMISSION_DENIED',
                 404: 'NOT_FOUND', 409: 'ALREADY_EXISTS', 500: 'INTERNAL'}


@dataclasses.dataclass
class Request:
    method: str
    path: str
    body: Optional[dict]


def state_name(value: Any) -> str:
    """A job state as its name, whether sent as a name or (REST) a number."""
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return JobState(int(value)).name
    return value


class DataflowStub:
    """The stand-in service: start it, point Beam at `endpoint`, stop it."""

    def __init__(self):
        self.requests: list[Request] = []
        self.jobs: dict[str, dict] = {}
        self.fail_with: Optional[tuple[int, str]] = None
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
                    'id': job_id, 'projectId': match['project'],
                    'location': match['region'], 'name': body.get('name'),
                    'clientRequestId': body.get('clientRequestId'),
                    'labels': body.get('labels', {}),
                    'type': body.get('type'),
                    'currentState': 'JOB_STATE_PENDING',
                }
                return 200, self.jobs[job_id]
            if job_id not in self.jobs:
                return 404, {'error': {'code': 404, 'status': 'NOT_FOUND',
                                       'message': f'No job {job_id}.'}}
            job = self.jobs[job_id]
            if method == 'PUT':
                requested = state_name((body or {}).get('requestedState'))
                if requested == 'JOB_STATE_CANCELLED':
                    job['currentState'] = 'JOB_STATE_CANCELLED'
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
