"""`beam-jobs serve`: the release coordinator's web console.

The console serves the registry and run records the other commands use;
runs started from it run as `beam-jobs run` in processes of their own, so
stopping the server stops none of them.
"""

from __future__ import annotations

import os
import socket

from beam_jobs import config
from beam_jobs import identity
from beam_jobs.cli import common

TOKEN_ENV = 'BEAM_JOBS_TOKEN'


def add_parsers(commands, parent) -> None:
    serve = commands.add_parser(
        'serve', parents=[parent], help='the web console: start, watch, '
        'cancel and sign off runs',
        description='Serve the web console. It listens on 127.0.0.1 only '
        'unless --host names another address; then it needs a token '
        f'(--token or {TOKEN_ENV}) from every request.')
    serve.add_argument('--host', default='127.0.0.1',
                       help='address to listen on (default 127.0.0.1)')
    serve.add_argument('--port', type=int, default=8080,
                       help='port to listen on (default 8080; 0 picks a free one)')
    serve.add_argument('--token', default=None,
                       help=f'the token every request must give (default: '
                       f'{TOKEN_ENV}, which other users cannot see in `ps`); '
                       'required for a non-loopback --host')
    serve.add_argument('--users', default=None, metavar='FILE',
                       help='a token per person: lines of `name: sha256 of the token`; '
                       'each signs in with their own, and approvals record the name')
    serve.set_defaults(handler=cmd_serve)


def cmd_serve(args) -> int:
    # Imported here so the other commands never pay for the web stack.
    import uvicorn

    from beam_jobs import console

    token = args.token or os.environ.get(TOKEN_ENV) or None
    users = console.read_users(args.users) if args.users else None
    if not console.is_loopback(args.host) and not (token or users):
        raise common.UsageError(
            f'Serving on {args.host} lets other machines start and cancel runs: '
            f'give a token with --token or {TOKEN_ENV}, or a token per person with '
            '--users FILE (or serve on 127.0.0.1).')
    registry = common.registry(args)
    store = common.store(args)
    listener = _listen(args.host, args.port)
    app = console.create_app(
        console.Console(registry, store, args.registry or config.get('registry')),
        token=token, users=users, owner=identity.machine_user(),
        loopback_only=console.is_loopback(args.host))
    host, port = listener.getsockname()[:2]
    shown = f'[{host}]' if ':' in host else host
    url = f'http://{shown}:{port}/'
    print(f'beam-jobs console: open {url}' +
          (' (log in with your token)' if token or users else ''), flush=True)
    if users:
        print(f'Sign-offs are recorded under each person\'s name ({len(users)} in '
              f'{args.users}).', flush=True)
    elif not token:
        print(f'Sign-offs here are recorded as {identity.machine_user()}.', flush=True)
    print('Ctrl-C stops the console; runs started from it go on.', flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level='warning', lifespan='off',
                                           access_log=False))
    try:
        server.run(sockets=[listener])
    except KeyboardInterrupt:
        pass   # uvicorn shut down cleanly, then re-raised the Ctrl-C
    print('Console stopped.', flush=True)
    return common.EXIT_OK


def _listen(host: str, port: int) -> socket.socket:
    if port < 0 or port > 65535:
        raise common.UsageError(f'--port {port} is not a port (0 to 65535).')
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host.strip('[]'), port))
    except OSError as error:
        listener.close()
        raise common.UsageError(f'Cannot listen on {host}:{port} ({error.strerror}): '
                                'pick another --port (or stop what uses it).') from None
    listener.listen(128)
    return listener
