"""What the console's tests share: a registry, an app, a server, waiting.

This module is also the registry the console's tests serve (`--registry
tests.console_helpers`): the test jobs, plus one with coordinator notes and
one whose output is cut at the size limit. Runs the console starts import it
in their own process, so it imports nothing that only tests have.
"""

import contextlib
import socket
import threading
import time

from beam_jobs import JobRegistry
from beam_jobs.records import runs
from tests import fixture_registry
from tests import job_fixtures as fx

REGISTRY_MODULE = 'tests.console_helpers'


class NotedJob(fx.TopicCountJob):
    """A job with coordinator notes, one of them raw HTML to be shown as text."""

    COORDINATOR_NOTES = (
        '**Run it after** the weekly export.\n\n'
        '- check the `math` count\n'
        '- <script>window.__notes_xss = 1</script> must show as text\n')


REGISTRY = JobRegistry([*fixture_registry.REGISTRY, NotedJob, fx.BigOutputJob])


def console(target):
    from beam_jobs import console as console_lib
    return console_lib.Console(REGISTRY, runs.RunStore(target), REGISTRY_MODULE)


def app(target, **kwargs):
    from beam_jobs import console as console_lib
    return console_lib.create_app(console(target), **kwargs)


def client(target, base_url='http://127.0.0.1:8080', **kwargs):
    from starlette.testclient import TestClient
    return TestClient(app(target, **kwargs), base_url=base_url)


def wait_for(store, run_id, statuses, timeout=90):
    """The record once its status is one of `statuses`."""
    deadline = time.monotonic() + timeout
    while True:
        record = store.get(run_id)
        if record.status in statuses:
            return record
        assert time.monotonic() < deadline, (
            f'run {run_id} stayed {record.status} (error: {record.error})')
        time.sleep(0.25)


def wait_until_finished(store, run_id, timeout=90):
    return wait_for(store, run_id, runs.TERMINAL, timeout)


@contextlib.contextmanager
def served(target, served_app=None, **kwargs):
    """The console (or `served_app`) on a free loopback port, served by
    uvicorn in a thread."""
    import uvicorn
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(64)
    server = uvicorn.Server(uvicorn.Config(served_app or app(target, **kwargs),
                                           log_level='warning',
                                           lifespan='off', access_log=False))
    thread = threading.Thread(target=server.run, kwargs={'sockets': [listener]},
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, 'the console did not start'
        time.sleep(0.05)
    try:
        yield f'http://127.0.0.1:{listener.getsockname()[1]}'
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()
