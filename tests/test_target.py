"""target.py: which database, and a named database a project does not have
refused in production, naming those it has (Firestore's admin API, played
here by a stand-in)."""

import http.server
import json
import threading

import pytest

from beam_jobs import refusals
from beam_jobs import target as target_lib

DATABASES = {'databases': [{'name': 'projects/shop/databases/(default)'},
                           {'name': 'projects/shop/databases/orders'}]}


@pytest.fixture
def firestore_admin(monkeypatch):
    """A stand-in for `GET /v1/projects/shop/databases`; production (no
    emulator) as far as the check can tell."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # pylint: disable=invalid-name
            known = self.path == '/v1/projects/shop/databases'
            body = json.dumps(DATABASES if known else {'error': 'no such project'}).encode()
            self.send_response(200 if known else 404)
            self.send_header('Content-Type', 'application/json')
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(('localhost', 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv('BEAM_JOBS_FIRESTORE_ENDPOINT', f'http://localhost:{server.server_port}')
    monkeypatch.delenv(target_lib.EMULATOR_HOST_ENV, raising=False)
    yield
    server.shutdown()
    server.server_close()


def test_a_database_the_project_lacks_is_refused_naming_those_it_has(firestore_admin):
    assert target_lib.database_ids('shop') == ['(default)', 'orders']
    target_lib.check_database_exists('shop', 'orders')
    with pytest.raises(refusals.Refused, match=r'Project shop has no database order: '
                       r'its databases are \(default\), orders\.'):
        target_lib.check_database_exists('shop', 'order')
    # Where they cannot be listed, nothing is refused (the first read says why).
    target_lib.check_database_exists('elsewhere', 'order')


def test_a_dataflow_run_against_a_database_the_project_lacks_is_refused(
        firestore_admin, monkeypatch):
    from beam_jobs.lifecycle import planning
    from tests import job_fixtures as fx
    monkeypatch.setenv(target_lib.DATABASE_ENV, 'order')
    with pytest.raises(refusals.Refused, match='Project shop has no database order'):
        planning.plan_run(fx.TopicCountJob, pipeline_args=[
            '--runner=DataflowRunner', '--project=shop', '--region=europe-west1',
            '--temp_location=gs://bucket/tmp', '--no_auth'])


@pytest.mark.parametrize('text', ['(default)', ''])
def test_the_default_database_is_no_database(text, monkeypatch):
    monkeypatch.setenv(target_lib.DATABASE_ENV, text)
    assert target_lib.run_database() is None
    assert target_lib.Target.from_environment('p').describe() == 'project p'
