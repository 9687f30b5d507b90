"""Who may use the console, and which requests may change anything.

- **Loopback only, by default.** Without a token the console binds to a
  loopback address and answers only requests addressed to a loopback name
  (the Host header), so a web page whose name resolves to 127.0.0.1 (DNS
  rebinding) reads nothing.
- **A token everywhere else.** With a token (`--token`, `BEAM_JOBS_TOKEN`),
  every request needs it: an `Authorization: Bearer TOKEN` header, or the
  session cookie the login form sets once the token was typed there.
  Anything else gets 401.
- **A token per person.** With a users file (`--users FILE`: one
  `name: sha256 of the token` per line), each person signs in with their own
  token, and the console knows who they are (`signed_in`): approvals and
  rejections record that name, never one typed into a form. A loopback
  console with no token is its own machine user's.
- **No cross-site changes.** A request that may change something (any
  method but GET, HEAD and OPTIONS) is refused with 403 when the browser
  says it comes from another site (`Sec-Fetch-Site`, `Origin`), and must
  carry the page's CSRF token (`X-CSRF-Token`, matching its cookie), unless
  it is plainly not a browser's: a bearer token, or JSON sent with neither
  `Origin` nor `Sec-Fetch-Site` (which no browser can send to another site
  without a CORS preflight this server never grants).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import time
from typing import Awaitable, Callable, Optional

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from beam_jobs import refusals

CSRF_COOKIE = 'beam_jobs_csrf'
CSRF_HEADER = 'x-csrf-token'
SESSION_COOKIE = 'beam_jobs_session'
SESSION_SECS = 12 * 3600
LOGIN_PATH = '/login'
SAFE_METHODS = frozenset({'GET', 'HEAD', 'OPTIONS'})
SECURITY_HEADERS = {
    'Content-Security-Policy': (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"),
    'X-Frame-Options': 'DENY',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'same-origin',
    'Cache-Control': 'no-store',
}


def is_loopback(host: str) -> bool:
    """Whether an address (or host name) is this machine's loopback."""
    host = host.strip('[]')
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    if host_header.startswith('['):
        return host_header[1:].split(']', 1)[0]
    return host_header.rsplit(':', 1)[0] if host_header.count(':') == 1 else host_header


def session_value(token: str, expires: Optional[int] = None,
                  user: Optional[str] = None) -> str:
    """A session cookie: its expiry (and the signed-in user's name, base64),
    signed with `token` (the console's token, or its users' secret)."""
    expires = expires or int(time.time()) + SESSION_SECS
    who = base64.urlsafe_b64encode(user.encode()).decode() if user else ''
    signature = hmac.new(token.encode(), f'session:{expires}:{who}'.encode(),
                         hashlib.sha256).hexdigest()
    return f'{expires}.{who}.{signature}' if who else f'{expires}.{signature}'


def _session_user(token: str, value: Optional[str]) -> Optional[str]:
    """The session's user ('' when it names none), or None if invalid."""
    if not value or '.' not in value:
        return None
    parts = value.split('.')
    expires, who = parts[0], parts[1] if len(parts) == 3 else ''
    if not expires.isdigit() or int(expires) < time.time():
        return None
    user = base64.urlsafe_b64decode(who.encode()).decode() if who else None
    if not hmac.compare_digest(session_value(token, int(expires), user), value):
        return None
    return user or ''


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def read_users(path: str) -> dict[str, str]:
    """`{sha256 of a token: name}` from a file of `name: sha256` lines
    (blank lines and `#` comments ignored); a bad line is a ValueError."""
    users: dict[str, str] = {}
    try:
        with open(path, encoding='utf-8') as handle:
            lines = handle.read().splitlines()
    except OSError as error:
        raise refusals.Refused(f'Cannot read the users file {path} ({error.strerror}).') from None
    for number, line in enumerate(lines, 1):
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        name, _, digest = line.partition(':')
        name, digest = name.strip(), digest.strip().lower()
        if not name or len(digest) != 64 or any(c not in '0123456789abcdef' for c in digest):
            raise refusals.Refused(f'{path}, line {number}: write `name: sha256 of the '
                                   'token` (64 hex digits; `printf %s TOKEN | sha256sum`).')
        users[digest] = name
    if not users:
        raise refusals.Refused(f'The users file {path} names nobody: add `name: sha256` lines.')
    return users


def signed_in(request: Request) -> Optional[str]:
    """Who made this request: the signed-in user's name, the console
    machine's user for a loopback console without a token, else None."""
    return request.scope.get('state', {}).get('user')


def csrf_token(request: Request) -> str:
    """The CSRF token of this browser (set by the guard on every request)."""
    return request.scope.get('state', {}).get('csrf_token', '')


def same_token(given: Optional[str], expected: Optional[str]) -> bool:
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


class Access:
    """Who may use the console, and who each request is: the shared token
    (or none), the users file's tokens, the session secret, and the console
    machine's user (who a loopback console without a token serves)."""

    def __init__(self, token: Optional[str] = None, users: Optional[dict] = None,
                 owner: Optional[str] = None):
        self.users = users or {}
        # With a users file, sessions are signed with a secret of this
        # process (signing in again after a restart); else with the token.
        self.secret: str = secrets.token_urlsafe(32) if self.users else (token or '')
        self.token = token
        self.owner = owner

    @property
    def needs_token(self) -> bool:
        return bool(self.token or self.users)

    @property
    def names_people(self) -> bool:
        """Whether the console knows who each request is from."""
        return bool(self.users) or not self.needs_token

    def user_of_token(self, given: Optional[str]) -> Optional[str]:
        """The name a token belongs to ('' for the shared token), or None."""
        if not given:
            return None
        if self.users:
            name = self.users.get(token_sha256(given))
            if name is not None:
                return name
        return '' if self.token and same_token(given, self.token) else None

    def session_for(self, user: str) -> str:
        return session_value(self.secret, user=user or None)

    def user_of_request(self, request: Request) -> Optional[str]:
        """The user's name ('' for the shared token), None if not signed in."""
        if not self.needs_token:
            return self.owner or ''
        scheme, _, given = request.headers.get('authorization', '').partition(' ')
        if scheme.lower() == 'bearer':
            return self.user_of_token(given.strip())
        return _session_user(self.secret, request.cookies.get(SESSION_COOKIE))


class Guard:
    """ASGI middleware applying the rules above to every HTTP request."""

    def __init__(self, app, *, access: Access, loopback_only: bool,
                 unauthorized_page: Callable[[Request], Awaitable[Response]]):
        self.app = app
        self.access = access
        self.loopback_only = loopback_only
        self.unauthorized_page = unauthorized_page

    async def __call__(self, scope, receive, send):
        if scope['type'] != 'http':
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        cookie = request.cookies.get(CSRF_COOKIE)
        fresh = None if cookie and len(cookie) >= 32 else secrets.token_urlsafe(32)
        scope.setdefault('state', {})['csrf_token'] = fresh or cookie
        user = self.access.user_of_request(request)
        scope['state']['user'] = user or None
        refusal = await self._refusal(request, user)
        app = refusal or self.app

        async def send_with_headers(message):
            if message['type'] == 'http.response.start':
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
                if fresh:
                    headers.append('set-cookie', f'{CSRF_COOKIE}={fresh}; Path=/; '
                                   'HttpOnly; SameSite=Strict')
            await send(message)
        await app(scope, receive, send_with_headers)

    async def _refusal(self, request: Request, user: Optional[str]) -> Optional[Response]:
        host = request.headers.get('host', '')
        if self.loopback_only and not is_loopback(_host_name(host)):
            return _error(request, 403, f'This console answers only at a loopback '
                          f'address (127.0.0.1 or localhost), not at {host!r}. '
                          'To serve other addresses, start it with --host and '
                          'a --token.')
        bearer = self._bearer(request)
        if self.access.needs_token and request.url.path != LOGIN_PATH and user is None:
            if request.url.path.startswith('/api/'):
                response = _error(request, 401, 'This console needs its token: '
                                  'send "Authorization: Bearer TOKEN", or log in '
                                  f'at {LOGIN_PATH}.')
                response.headers['WWW-Authenticate'] = 'Bearer'
                return response
            return await self.unauthorized_page(request)
        if request.method in SAFE_METHODS:
            return None
        return self._cross_site_refusal(request, bearer)

    def _bearer(self, request: Request) -> bool:
        scheme, _, given = request.headers.get('authorization', '').partition(' ')
        return self.access.needs_token and scheme.lower() == 'bearer' and \
            self.access.user_of_token(given.strip()) is not None

    def _cross_site_refusal(self, request: Request, bearer: bool) -> Optional[Response]:
        fetch_site = request.headers.get('sec-fetch-site')
        origin = request.headers.get('origin')
        own_origin = f'{request.url.scheme}://{request.headers.get("host", "")}'
        if fetch_site and fetch_site not in ('same-origin', 'none'):
            return _error(request, 403, f'Refused a {fetch_site} request: the '
                          'console changes nothing for another site\'s page.')
        if origin and origin != own_origin:
            return _error(request, 403, f'Refused a request from {origin}: the '
                          'console changes nothing for another site\'s page.')
        if bearer or request.url.path == LOGIN_PATH:
            return None   # the login form checks its own CSRF field
        if same_token(request.headers.get(CSRF_HEADER),
                      request.cookies.get(CSRF_COOKIE)):
            return None
        content_type = request.headers.get('content-type', '').split(';')[0].strip()
        if not origin and not fetch_site and content_type == 'application/json':
            return None   # a script's request: no browser sends this cross-site
        return _error(request, 403, 'Refused a request without the page\'s CSRF '
                      'token: reload the page and try again (scripts send JSON '
                      'with Content-Type: application/json).')


def _error(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith('/api/'):
        return JSONResponse({'error': message}, status_code=status)
    return Response(message + '\n', status_code=status, media_type='text/plain')
