"""The console's web app: server-rendered pages and the JSON API they use.

Pages: `/` (jobs), `/runs`, `/runs/{id}`, `/rehearsals`, `/rehearsals/{id}`,
`/requests`, `/audit`. API (see the README's "The console"): `/api/jobs`,
`/api/runs`, `/api/runs/plan`, `/api/runs/{id}`, `/api/runs/{id}/output`,
`/api/runs/{id}/cancel`, `/api/rehearsals`, `/api/rehearsals/{id}`,
`/api/rehearsals/{id}/approve`, `/api/rehearsals/{id}/withdraw`,
`/api/rehearsals/{id}/cancel`,
`/api/requests`, `/api/requests/{id}`, `/api/requests/{id}/reject`,
`/api/audit`.

Handlers are thin: each asks `service.Console` and renders or returns what
it says. Handlers that touch the Datastore are plain functions, which
Starlette runs in its thread pool, so a slow read never stalls the server.
Templates autoescape everything: a job that outputs `<script>` shows it.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, Optional
from urllib.parse import quote

from google.api_core import exceptions as api_exceptions
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from beam_jobs import failures
from beam_jobs import identity
from beam_jobs import readable
from beam_jobs import refusals
from beam_jobs.console import security
from beam_jobs.console import service
from beam_jobs.console import views
from beam_jobs.io import sources

HERE = pathlib.Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / 'templates'))
TEMPLATES.env.filters['markdown'] = views.markdown
# JSON as text, escaped like any other text (Jinja's `tojson` is for scripts).
TEMPLATES.env.filters['json_text'] = lambda value: json.dumps(
    value, sort_keys=True, ensure_ascii=False, default=str)
TEMPLATES.env.globals['duration'] = readable.duration
TEMPLATES.env.globals['source_text'] = sources.text


def create_app(console: service.Console, *, token: Optional[str] = None,
               loopback_only: bool = True, users: Optional[dict] = None,
               owner: Optional[str] = None) -> Starlette:
    """The console for `console`'s project.

    `loopback_only` (no token) answers only requests addressed to a
    loopback name; a `token`, or one of the `users`' tokens
    (security.read_users), is then required of every request. `owner` is who
    a console without tokens serves: by default its machine's user.
    """
    access = security.Access(token, users, owner or identity.machine_user())
    pages = _Pages(console, access)
    api = _Api(console)
    routes = [
        Route('/', pages.jobs),
        Route('/runs', pages.runs),
        Route('/runs/{run_id}', pages.run),
        Route('/runs/{run_id}/output.txt', pages.output_text),
        Route('/rehearsals', pages.rehearsals),
        Route('/rehearsals/{rehearsal_id}', pages.rehearsal),
        Route('/requests', pages.requests),
        Route('/requests/{request_id}', pages.request),
        Route('/audit', pages.audit),
        Route('/plan', pages.plan),
        Route(security.LOGIN_PATH, pages.login, methods=['GET', 'POST']),
        Route('/api/jobs', api.jobs),
        Route('/api/runs', api.runs),
        Route('/api/runs', api.start, methods=['POST']),
        Route('/api/runs/plan', api.plan, methods=['POST']),
        Route('/api/runs/{run_id}', api.run),
        Route('/api/runs/{run_id}/output', api.output),
        Route('/api/runs/{run_id}/cancel', api.cancel, methods=['POST']),
        Route('/api/runs/{run_id}/revert', api.revert, methods=['POST']),
        Route('/api/rehearsals', api.rehearsals),
        Route('/api/rehearsals/{rehearsal_id}', api.rehearsal),
        Route('/api/rehearsals/{rehearsal_id}/approve', api.approve, methods=['POST']),
        Route('/api/rehearsals/{rehearsal_id}/withdraw', api.withdraw, methods=['POST']),
        Route('/api/rehearsals/{rehearsal_id}/cancel', api.cancel_rehearsal,
              methods=['POST']),
        Route('/api/requests', api.requests),
        Route('/api/requests/{request_id}', api.request),
        Route('/api/requests/{request_id}/reject', api.reject, methods=['POST']),
        Route('/api/audit', api.audit),
        Route('/api/plan', api.plan_of_release),
        Mount('/static', StaticFiles(directory=str(HERE / 'static')), name='static'),
    ]
    middleware = [Middleware(security.Guard, access=access,
                             loopback_only=loopback_only and not access.needs_token,
                             unauthorized_page=pages.unauthorized)]
    handlers = {refusals.Refused: _refused, service.ServerError: _server_error,
                404: _not_found,
                api_exceptions.GoogleAPICallError: _datastore_error,
                api_exceptions.RetryError: _datastore_error}
    return Starlette(routes=routes, middleware=middleware,
                     exception_handlers=handlers)  # type: ignore[arg-type]  # Starlette's handler types are narrower than its dispatch


def _is_api(request: Request) -> bool:
    return request.url.path.startswith('/api/')


def _error_response(request: Request, status: int, message: str) -> Response:
    if _is_api(request):
        return JSONResponse({'error': message}, status_code=status)
    return _render(request, 'error.html', {'status': status, 'message': message},
                   status)


# The HTTP status of each kind of refusal (refusals.py); any other is a 400.
REFUSAL_STATUS = ((refusals.NotFound, 404), (refusals.NotAllowed, 403),
                  (refusals.Conflict, 409))


def refusal_status(error: refusals.Refused) -> int:
    return next((status for kind, status in REFUSAL_STATUS if isinstance(error, kind)), 400)


async def _refused(request: Request, error: refusals.Refused) -> Response:
    """Every refusal, wherever it was raised: its sentence, with its status."""
    return _error_response(request, refusal_status(error), str(error))


async def _server_error(request: Request, error: service.ServerError) -> Response:
    return _error_response(request, error.status, str(error))


async def _not_found(request: Request, unused_error: Exception) -> Response:
    return _error_response(request, 404, f'There is no page at {request.url.path}: '
                           'see the runs, rehearsals, requests or the release plan.')


async def _datastore_error(request: Request, error: Exception) -> Response:
    return _error_response(request, 503, 'The Datastore did not answer: '
                           f'{failures.describe(error)}')


def _render(request: Request, name: str, context: dict[str, Any],
            status: int = 200) -> Response:
    context = {'csrf_token': security.csrf_token(request),
               'signed_in': security.signed_in(request), 'legend': views.LEGEND, **context}
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status)


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b'{}')
    except (ValueError, UnicodeDecodeError):
        raise service.BadRequest('The request body is not JSON: send a JSON '
                                 'object with Content-Type: application/json.') from None


class _Pages:
    def __init__(self, console: service.Console, access: security.Access):
        self.console = console
        self.access = access

    def jobs(self, request: Request) -> Response:
        return _render(request, 'jobs.html', {
            'page': 'jobs', 'jobs': self.console.jobs(),
            'destination': self.console.destination()})

    def runs(self, request: Request) -> Response:
        job = request.query_params.get('job')
        shown = self.console.runs(request.query_params.get('limit', service.RUNS_SHOWN),
                                  job)
        return _render(request, 'runs.html', {
            'page': 'runs', 'runs': shown, 'job': job,
            'limit': request.query_params.get('limit', service.RUNS_SHOWN)})

    def run(self, request: Request) -> Response:
        run_id = request.path_params['run_id']
        record = self.console.run(run_id)
        return _render(request, 'run.html', {
            'page': 'runs', 'run': views.run_view(record),
            'output': self.console.output(run_id, record)})

    def output_text(self, request: Request) -> Response:
        run_id = request.path_params['run_id']
        output = self.console.output(run_id)
        text = ''.join(f'{line}\n' for line in output['lines'])
        return PlainTextResponse(text, headers={
            'Content-Disposition': f'attachment; filename="{quote(run_id)}.txt"'})

    def rehearsals(self, request: Request) -> Response:
        return _render(request, 'rehearsals.html', {
            'page': 'rehearsals', 'rehearsals': self.console.rehearsal_list(),
            'may_sign': self.console.may_sign(security.signed_in(request))})

    def rehearsal(self, request: Request) -> Response:
        record = self.console.rehearsal(request.path_params['rehearsal_id'])
        return _render(request, 'rehearsal.html', {
            'page': 'rehearsals', 'r': views.rehearsal_view(record),
            'may_sign': self.console.may_sign(security.signed_in(request))})

    def requests(self, request: Request) -> Response:
        return _render(request, 'requests.html', {
            'page': 'requests', 'requests': self.console.requests(),
            'may_sign': self.console.may_sign(security.signed_in(request))})

    def request(self, request: Request) -> Response:
        """A request's row on the requests page (an unknown one: not found)."""
        request_id = request.path_params['request_id']
        self.console.request(request_id)
        return RedirectResponse(f'/requests#{request_id}', status_code=303)

    def plan(self, request: Request) -> Response:
        return _render(request, 'plan.html', {
            'page': 'plan', **self.console.release_plan(request.query_params.get('project'))})

    def audit(self, request: Request) -> Response:
        return _render(request, 'audit.html', {
            'page': 'audit', 'decisions': self.console.audit(request.query_params.get('job'))})

    async def login(self, request: Request) -> Response:
        target = _local_path(request.query_params.get('next'))
        if request.method == 'GET':
            return _render(request, 'login.html', {'next': target, 'message': None,
                                                   'needs_token': self.access.needs_token,
                                                   'names_people': self.access.names_people})
        form = await request.form()
        target = _local_path(form.get('next'))
        if not security.same_token(_text(form.get('csrf_token')),
                                   request.cookies.get(security.CSRF_COOKIE)):
            return _render(request, 'login.html', {
                'next': target, 'needs_token': True,
                'message': 'The form expired: try again.'}, 403)
        user = self.access.user_of_token(_text(form.get('token'))) \
            if self.access.needs_token else None
        if user is None:
            return _render(request, 'login.html', {
                'next': target, 'needs_token': self.access.needs_token,
                'message': 'That is not a token of this console.'}, 401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(security.SESSION_COOKIE, self.access.session_for(user),
                            max_age=security.SESSION_SECS, path='/', httponly=True,
                            samesite='strict')
        return response

    async def unauthorized(self, request: Request) -> Response:
        return _render(request, 'login.html', {
            'next': _local_path(request.url.path), 'needs_token': True,
            'names_people': self.access.names_people, 'message': None}, 401)


def _text(value: Any) -> Optional[str]:
    """A form field as text (an uploaded file is not)."""
    return value if isinstance(value, str) else None


def _local_path(path: Any) -> str:
    """Where to go after logging in: a path of this site, never another's."""
    if not isinstance(path, str) or not path.startswith('/') or path.startswith('//') \
            or '\\' in path:
        return '/'
    return path


class _Api:
    def __init__(self, console: service.Console):
        self.console = console

    def jobs(self, request: Request) -> Response:
        return JSONResponse({'jobs': self.console.jobs(),
                             'destination': self.console.destination()})

    def runs(self, request: Request) -> Response:
        return JSONResponse({'runs': self.console.runs(
            request.query_params.get('limit', service.RUNS_SHOWN),
            request.query_params.get('job'))})

    async def plan(self, request: Request) -> Response:
        body = await _json_body(request)
        _, confirmation = await run_in_threadpool(self.console.plan_start, body)
        return JSONResponse(confirmation)

    async def start(self, request: Request) -> Response:
        body = await _json_body(request)
        record = await run_in_threadpool(self.console.start, body)
        return JSONResponse({'run_id': record.run_id, 'url': f'/runs/{record.run_id}'},
                            status_code=201)

    def run(self, request: Request) -> Response:
        return JSONResponse(views.run_view(self.console.run(request.path_params['run_id'])))

    def output(self, request: Request) -> Response:
        return JSONResponse(self.console.output(request.path_params['run_id']))

    async def cancel(self, request: Request) -> Response:
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise service.BadRequest('The request body must be a JSON object: '
                                     '{"user": "your name"} or {}.')
        record = await run_in_threadpool(self.console.cancel,
                                         request.path_params['run_id'], body.get('user'),
                                         security.signed_in(request))
        return JSONResponse(views.run_view(record))

    async def revert(self, request: Request) -> Response:
        body = await _json_body(request)
        record = await run_in_threadpool(self.console.revert, request.path_params['run_id'],
                                         body, security.signed_in(request))
        return JSONResponse({'run_id': record.run_id, 'url': f'/runs/{record.run_id}'},
                            status_code=201)

    def rehearsals(self, request: Request) -> Response:
        return JSONResponse({'rehearsals': self.console.rehearsal_list()})

    def rehearsal(self, request: Request) -> Response:
        record = self.console.rehearsal(request.path_params['rehearsal_id'])
        return JSONResponse(views.rehearsal_view(record))

    async def _as_signed_in(self, request: Request, action) -> Response:
        """`action(rehearsal_id, body, signed-in name)`, answered with the
        rehearsal as it then stands."""
        body = await _json_body(request)
        record = await run_in_threadpool(action, request.path_params['rehearsal_id'], body,
                                         security.signed_in(request))
        return JSONResponse(views.rehearsal_view(record))

    async def approve(self, request: Request) -> Response:
        return await self._as_signed_in(request, self.console.approve)

    async def withdraw(self, request: Request) -> Response:
        return await self._as_signed_in(request, self.console.withdraw)

    async def cancel_rehearsal(self, request: Request) -> Response:
        return await self._as_signed_in(request, self.console.cancel_rehearsal)

    def requests(self, request: Request) -> Response:
        return JSONResponse({'requests': self.console.requests(
            request.query_params.get('job'))})

    def request(self, request: Request) -> Response:
        return JSONResponse(self.console.request(request.path_params['request_id']))

    async def reject(self, request: Request) -> Response:
        body = await _json_body(request)
        found = await run_in_threadpool(self.console.reject,
                                        request.path_params['request_id'], body,
                                        security.signed_in(request))
        return JSONResponse(found)

    def plan_of_release(self, request: Request) -> Response:
        return JSONResponse(self.console.release_plan(request.query_params.get('project')))

    def audit(self, request: Request) -> Response:
        return JSONResponse({'decisions': self.console.audit(
            request.query_params.get('job'),
            request.query_params.get('limit', service.RUNS_SHOWN))})
