"""The console's JSON API and pages, over HTTP, on the real test emulator.

Runs started here run for real: `beam-jobs run` in a process of its own,
against this test's namespace of the emulator.
"""

import json
import os
import re
import signal
import subprocess
import sys

import urllib.request
import pytest

from beam_jobs import cli, identity, testing
from beam_jobs.records import runs
from beam_jobs import readable
from beam_jobs.console import views
from beam_jobs.io import sources
from beam_jobs.records import rehearsals as rehearsal_record
from tests import console_helpers as helpers
from tests import export_helpers
from tests import job_fixtures as fx

ORIGIN = 'http://127.0.0.1:8080'


@pytest.fixture
def store(datastore_target):
    return runs.RunStore(datastore_target)


@pytest.fixture
def client(datastore_target):
    with helpers.client(datastore_target) as test_client:
        yield test_client


def _put_notes(target, notes):
    with testing.ndb_context(target):
        testing.put_models(target, notes() if callable(notes) else notes)


def _as_page(client):
    """Headers a page's own fetch sends: same origin, with its CSRF token."""
    client.get('/')
    return {'Origin': ORIGIN, 'Sec-Fetch-Site': 'same-origin',
            'X-CSRF-Token': client.cookies['beam_jobs_csrf']}


def _start(client, **body):
    response = client.post('/api/runs', json=body, headers=_as_page(client))
    assert response.status_code == 201, response.text
    return response.json()['run_id']


def _run_ids(store):
    return {record.run_id for record in store.recent(500)}


# Jobs

def test_jobs_lists_every_registered_job(client, store):
    unfinished = store.create('ParamJob')   # new, as a run that has not started yet
    jobs = client.get('/api/jobs').json()
    assert [job['name'] for job in jobs['jobs']] == helpers.REGISTRY.names()
    by_name = {job['name']: job for job in jobs['jobs']}
    assert by_name['TopicCountJob']['kinds'] == ['NoteModel']
    assert by_name['TopicCountJob']['last_run'] is None
    assert by_name['TopicCountJob']['last_rehearsal'] is None
    assert by_name['NotedJob']['coordinator_notes'] == helpers.NotedJob.COORDINATOR_NOTES
    assert [r['run_id'] for r in by_name['ParamJob']['unfinished_runs']] == [unfinished.run_id]
    assert by_name['ParamJob']['last_run']['run_id'] == unfinished.run_id
    assert jobs['destination']['type'] == 'local'
    assert os.environ['DATASTORE_EMULATOR_HOST'] in jobs['destination']['text']

    page = client.get('/')
    assert page.status_code == 200
    assert 'A run of this job is already' in page.text and unfinished.run_id in page.text
    # Coordinator notes are Markdown, with raw HTML shown as text.
    assert '<strong>Run it after</strong>' in page.text
    assert '&lt;script&gt;window.__notes_xss = 1&lt;/script&gt;' in page.text
    assert '<script>window.__notes_xss' not in page.text


def test_the_pages_say_when_runs_go_to_dataflow(client, monkeypatch):
    for name, value in (('RUNNER', 'DataflowRunner'), ('PROJECT', 'my-project'),
                        ('REGION', 'us-central1'), ('BUCKET', 'my-bucket')):
        monkeypatch.setenv(f'BEAM_JOBS_{name}', value)
    destination = client.get('/api/jobs').json()['destination']
    assert destination['type'] == 'dataflow'
    assert (destination['project'], destination['region']) == ('my-project', 'us-central1')
    assert 'Dataflow (DataflowRunner) in project my-project, region us-central1' in \
        client.get('/').text


# Starting runs

def test_a_run_started_from_the_api_runs_in_its_own_process(client, store, datastore_target):
    _put_notes(datastore_target, lambda: fx.notes(6))
    plan = client.post('/api/runs/plan', json={'job': 'TopicCountJob', 'shard_count': 2})
    assert plan.status_code == 200, plan.text
    assert plan.json()['shard_count'] == 2 and plan.json()['warnings'] == []
    assert 'emulator' in plan.json()['destination']
    assert 'may put or delete entities of kinds NoteModel' in plan.json()['writes']

    run_id = _start(client, job='TopicCountJob', shard_count=2)
    # Another console (a restarted server) follows the same run.
    with helpers.client(datastore_target) as restarted:
        record = helpers.wait_until_finished(store, run_id)
        assert record.status == runs.COMPLETED, record.error
        assert record.pid != os.getpid() and record.shard_count == 2
        shown = restarted.get(f'/api/runs/{run_id}').json()
    assert shown['status'] == 'completed' and shown['label'] == 'Completed'
    assert shown['finished'] and not shown['can_cancel']
    assert shown['output_line_count'] == 3 and shown['error_count'] == 0
    assert shown['counters']['entities_read.NoteModel'] == 6
    assert shown['source'] == {'type': 'datastore', 'project': datastore_target.project,
                               'namespace': datastore_target.namespace}
    output = client.get(f'/api/runs/{run_id}/output').json()
    assert sorted(output['lines']) == ["['art', 2]", "['math', 2]", "['music', 2]"]
    assert output['error_lines'] == [] and not output['truncated']

    listed = client.get('/api/runs').json()['runs']
    assert listed[0]['run_id'] == run_id
    assert client.get('/runs').status_code == 200
    page = client.get(f'/runs/{run_id}')
    assert page.status_code == 200 and "[&#39;art&#39;, 2]" in page.text
    download = client.get(f'/runs/{run_id}/output.txt')
    assert download.headers['content-disposition'] == f'attachment; filename="{run_id}.txt"'
    assert sorted(download.text.splitlines()) == sorted(output['lines'])


def test_params_arrive_typed_and_dry_runs_write_nothing(client, store, datastore_target):
    _put_notes(datastore_target, lambda: fx.notes(4))
    params = {'topic': 'art', 'count': 3, 'text_three': '3', 'flag': '--dry-run',
              'list': [1, 'two']}
    param_run = _start(client, job='ParamJob', params=params)
    dry_run = _start(client, job='TopicTagMigrationJob', dry_run=True)
    plan = client.post('/api/runs/plan', json={'job': 'TopicTagMigrationJob',
                                               'dry_run': True}).json()
    assert plan['writes'].startswith('Nothing: a dry run writes nothing')

    record = helpers.wait_until_finished(store, param_run)
    assert record.status == runs.COMPLETED, record.error
    assert record.params == params
    assert store.output(param_run) == ["['match', ['note-001']]"]
    record = helpers.wait_until_finished(store, dry_run)
    assert record.status == runs.COMPLETED, record.error
    assert record.params == {'dry_run': True}
    assert any(line.startswith('DRY RUN: would put 4 TagModel')
               for line in store.output(dry_run))
    with testing.ndb_context(datastore_target):
        assert fx.TagModel.query().count() == 0


def test_failed_items_come_first_and_everything_shows_as_text(client, store,
                                                              datastore_target):
    evil = '<img src=x onerror=alert(1)>'
    _put_notes(datastore_target, lambda: [fx.NoteModel(id=evil, text='bad'),
                                          fx.NoteModel(id='fine', text='ok')])
    run_id = _start(client, job='FailingMapJob', params={'why': '<script>x</script>'})
    record = helpers.wait_until_finished(store, run_id)
    assert record.status == runs.COMPLETED and record.error_count == 1
    output = client.get(f'/api/runs/{run_id}/output').json()
    assert output['lines'][0].startswith(f'ERROR in map for NoteModel/{evil}: ValueError')
    assert output['error_lines'] == output['lines'][:1]
    assert client.get(f'/api/runs/{run_id}').json()['label'] == 'Completed, 1 item failed'
    page = client.get(f'/runs/{run_id}').text
    assert '&lt;img src=x onerror=alert(1)&gt;' in page and evil not in page
    assert '&lt;script&gt;x&lt;/script&gt;' in page and '<script>x' not in page
    assert 'Failed items and error lines (1)' in page


def test_the_truncation_marker_is_visible(client, store, datastore_target):
    _put_notes(datastore_target, lambda: fx.notes(10))
    run_id = _start(client, job='BigOutputJob')
    assert helpers.wait_until_finished(store, run_id).status == runs.COMPLETED
    output = client.get(f'/api/runs/{run_id}/output').json()
    assert output['truncated'] and output['lines'][-1].startswith('<TRUNCATED: ')
    page = client.get(f'/runs/{run_id}').text
    assert 'line line-truncated">&lt;TRUNCATED: ' in page
    assert 'The stored output was cut at its size limit' in page


@pytest.mark.parametrize('body, message', [
    ({'job': 'NoSuchJob'}, "No job named 'NoSuchJob'"),
    ({'job': 'TopicCountJbo'}, 'Did you mean: TopicCountJob?'),
    ({}, 'Name the job to run'),
    ({'job': 'ParamJob', 'params': ['topic', 'art']}, '"params" must be a JSON object'),
    ({'job': 'ParamJob', 'params': 'topic=art'}, '"params" must be a JSON object'),
    ({'job': 'ParamJob', 'params': {'a=b': 1}}, 'without "="'),
    ({'job': 'ParamJob', 'params': {'entity_kinds': 1}}, 'shadows a parameter'),
    ({'job': 'ParamJob', 'shard_count': 0}, 'shard_count must be a positive whole number'),
    ({'job': 'ParamJob', 'shard_count': -3}, 'shard_count must be a positive whole number'),
    ({'job': 'ParamJob', 'shard_count': 2.5}, 'shard_count must be a positive whole number'),
    ({'job': 'ParamJob', 'shard_count': '8'}, 'shard_count must be a positive whole number'),
    ({'job': 'ParamJob', 'shard_count': True}, 'shard_count must be a positive whole number'),
    ({'job': 'ParamJob', 'dry_run': 'yes'}, '"dry_run" must be true or false'),
    ({'job': 'ParamJob', 'export': '/no/such/export'}, 'There is no export at /no/such/export'),
    ({'job': 'ParamJob', 'export': 7}, '"export" must be the path'),
    ({'job': 'ParamJob', 'shards': 2}, 'Unknown field(s) shards'),
    (['ParamJob'], 'must be a JSON object'),
])
def test_bad_start_requests_are_refused_and_change_nothing(client, store, body, message):
    before = _run_ids(store)
    for path in ('/api/runs/plan', '/api/runs'):
        response = client.post(path, json=body)
        assert response.status_code == 400, response.text
        assert message in response.json()['error']
    assert _run_ids(store) == before


def test_the_confirmation_warns_of_a_run_already_going(client, store):
    going = store.create('ParamJob')
    plan = client.post('/api/runs/plan', json={'job': 'ParamJob'}).json()
    assert plan['warnings'] == [f'A run of ParamJob is already waiting to start: '
                                f'{going.run_id}.']


def test_a_body_that_is_not_json_is_refused(client, store):
    response = client.post('/api/runs', content=b'job=ParamJob',
                           headers={'Content-Type': 'application/json'})
    assert response.status_code == 400
    assert 'not JSON' in response.json()['error']
    assert _run_ids(store) == set()


def test_a_folder_that_is_no_export_is_refused(client, store, tmp_path):
    response = client.post('/api/runs', json={'job': 'ParamJob', 'export': str(tmp_path)})
    assert response.status_code == 400 and response.json()['error']
    assert _run_ids(store) == set()


def test_a_run_over_an_export_reads_it_and_writes_nothing(
        client, store, datastore_target, datastore_emulator, tmp_path):
    _put_notes(datastore_target, lambda: fx.notes(4))
    export = export_helpers.export_namespace(datastore_emulator, datastore_target,
                                             tmp_path, kinds=['NoteModel'])
    plan = client.post('/api/runs/plan', json={'job': 'TopicTagMigrationJob',
                                               'export': export}).json()
    assert plan['writes'].startswith('Nothing to any Datastore')
    assert plan['reads'].startswith('the export ')
    run_id = _start(client, job='TopicTagMigrationJob', export=export)
    record = helpers.wait_until_finished(store, run_id)
    assert record.status == runs.COMPLETED, record.error
    assert record.source['type'] == 'export'
    assert record.source['entities'] == {'NoteModel': 4}
    with testing.ndb_context(datastore_target):
        assert fx.TagModel.query().count() == 0
    shown = client.get(f'/api/runs/{run_id}').json()
    assert shown['source_text'].startswith('export ') and 'NoteModel 4' in shown['source_text']
    assert shown['source_text'] in client.get('/runs').text


def test_a_run_whose_process_dies_before_starting_ends_failed(client, store, monkeypatch):
    # The process refuses its command line before it takes the record
    # (here a flag it does not know): the record must not stay `new`.
    from beam_jobs.console import launch
    real_command = launch.command
    monkeypatch.setattr(launch, 'command', lambda *args: [
        *real_command(*args)[:3], '--no-such-flag'])
    response = client.post('/api/runs', json={'job': 'ParamJob'})
    assert response.status_code == 201
    record = helpers.wait_until_finished(store, response.json()['run_id'], timeout=60)
    assert record.status == runs.FAILED
    assert 'exited (code 2) before it started the run' in record.error
    assert record.log_file.endswith('.console.txt')


# Unknown runs, cancel

def test_unknown_runs_are_404(client):
    for path in ('/api/runs/nope', '/api/runs/nope/output'):
        response = client.get(path)
        assert response.status_code == 404
        assert "No run 'nope'" in response.json()['error']
    response = client.post('/api/runs/nope/cancel', json={})
    assert response.status_code == 404
    page = client.get('/runs/nope')
    assert page.status_code == 404 and 'No run &#39;nope&#39;' in page.text
    assert client.get('/runs/nope/output.txt').status_code == 404


def test_cancel_a_running_run_then_refuse_a_second_cancel(client, store, datastore_target):
    _put_notes(datastore_target, lambda: fx.notes(200))
    run_id = _start(client, job='SlowJob')
    helpers.wait_for(store, run_id, {runs.STARTED})
    response = client.post(f'/api/runs/{run_id}/cancel', json={'user': 'coordinator'},
                           headers=_as_page(client))
    assert response.status_code == 200, response.text
    assert response.json()['status'] == 'canceled'
    # A loopback console without a token acts as its machine's user.
    me = identity.machine_user()
    assert response.json()['canceled_by'] == me
    assert store.get(run_id).error == f'Canceled by {me}.'

    again = client.post(f'/api/runs/{run_id}/cancel', json={'user': 'someone else'})
    assert again.status_code == 409
    assert 'already ended (canceled); nothing to cancel' in again.json()['error']
    assert store.get(run_id).canceled_by == me


def test_cancel_refuses_a_user_that_is_not_text(client, store):
    record = store.create('ParamJob')
    response = client.post(f'/api/runs/{record.run_id}/cancel', json={'user': ['x']})
    assert response.status_code == 400
    assert store.get(record.run_id).status == runs.NEW


# Rehearsals

def _rehearsals(target):
    rehearsals = rehearsal_record.RehearsalStore(target)
    passed = rehearsals.create(
        'TopicCountJob', verdict='passed', reasons=['every check passed'],
        code_version={'commit': 'abc1234', 'dirty': False,
                      'source_file': 'tests/job_fixtures.py', 'source_sha256': 'f' * 64},
        export={'path': '/exports/2026-11-30', 'timestamp': '2026-11-30T10:47:47',
                'entities': {'NoteModel': 6}},
        run_id='TopicCountJob-1-000001', writes={'put': {'TagModel': 6}},
        durations={'job': 4.2, 'verify': {}, 'total': 5.0},
        coordinator_notes='Check <b>math</b>.')
    failed = rehearsals.create('FailingMapJob', verdict='failed',
                               reasons=['1 item failed: NoteModel/x'],
                               failed_items=[{'step': 'map', 'kind': 'NoteModel',
                                              'key': 'x', 'reason': 'ValueError',
                                              'line': 'ERROR ...'}])
    return rehearsals, passed, failed


def test_rehearsals_are_listed_and_a_passed_one_can_be_approved(client, datastore_target):
    rehearsals, passed, failed = _rehearsals(datastore_target)
    listed = client.get('/api/rehearsals').json()['rehearsals']
    assert [r['rehearsal_id'] for r in listed] == [failed.rehearsal_id, passed.rehearsal_id]
    assert listed[1]['can_approve'] and not listed[0]['can_approve']
    assert listed[1]['run_ids'] == ['TopicCountJob-1-000001']
    page = client.get('/rehearsals').text
    assert 'every check passed' in page and '1 item failed: NoteModel/x' in page
    assert 'Check &lt;b&gt;math&lt;/b&gt;.' in page
    assert 'href="/runs/TopicCountJob-1-000001"' in page
    assert client.get(f'/rehearsals/{passed.rehearsal_id}').status_code == 200

    response = client.post(f'/api/rehearsals/{passed.rehearsal_id}/approve',
                           json={'user': 'rc', 'note': 'looked at the counts'},
                           headers=_as_page(client))
    assert response.status_code == 200, response.text
    assert response.json()['is_approved']
    approval = rehearsals.get(passed.rehearsal_id).approvals[0]
    # A loopback console without a token signs off as its machine's user,
    # whatever name the body gives.
    assert (approval['user'], approval['note']) == (identity.machine_user(),
                                                    'looked at the counts')
    jobs = {job['name']: job for job in client.get('/api/jobs').json()['jobs']}
    assert jobs['TopicCountJob']['last_rehearsal']['is_approved']


def test_bad_approvals_are_refused_and_change_nothing(client, datastore_target):
    rehearsals, passed, failed = _rehearsals(datastore_target)
    response = client.post(f'/api/rehearsals/{failed.rehearsal_id}/approve',
                           json={'user': 'rc'})
    assert response.status_code == 409
    assert 'only a passed rehearsal can be approved' in response.json()['error']
    response = client.post('/api/rehearsals/nope/approve', json={'user': 'rc'})
    assert response.status_code == 404 and "No rehearsal 'nope'" in response.json()['error']
    for body in ({'note': 5}, ['rc'], 'rc'):
        response = client.post(f'/api/rehearsals/{passed.rehearsal_id}/approve', json=body)
        assert response.status_code == 400, body
    assert client.get('/api/rehearsals/nope').status_code == 404
    assert client.get('/rehearsals/nope').status_code == 404
    assert rehearsals.get(failed.rehearsal_id).approvals == []
    assert rehearsals.get(passed.rehearsal_id).approvals == []


# Who may use it

def test_a_token_is_needed_for_every_request(datastore_target):
    with helpers.client(datastore_target, token='s3cret') as client:
        for path in ('/api/jobs', '/api/runs', '/api/rehearsals', '/api/runs/x'):
            response = client.get(path)
            assert response.status_code == 401, path
            assert response.headers['www-authenticate'] == 'Bearer'
        assert client.post('/api/runs', json={'job': 'ParamJob'}).status_code == 401
        page = client.get('/runs')
        assert page.status_code == 401 and 'name="token"' in page.text
        assert client.get('/static/console.js').status_code == 401
        wrong = client.get('/api/jobs', headers={'Authorization': 'Bearer nope'})
        assert wrong.status_code == 401

        bearer = {'Authorization': 'Bearer s3cret'}
        assert client.get('/api/jobs', headers=bearer).status_code == 200
        # A bearer token is no browser's: it needs no CSRF token.
        refused = client.post('/api/runs', json={'job': 'Nope'}, headers=bearer)
        assert refused.status_code == 400 and 'No job named' in refused.json()['error']

        # The login form sets a session; it needs the form's CSRF field.
        csrf = client.cookies['beam_jobs_csrf']
        form = {'token': 'wrong', 'csrf_token': csrf, 'next': '/runs'}
        assert client.post('/login', data=form).status_code == 401
        assert client.post('/login', data={**form, 'token': 's3cret',
                                           'csrf_token': 'x'}).status_code == 403
        response = client.post('/login', data={**form, 'token': 's3cret'},
                               follow_redirects=False)
        assert response.status_code == 303 and response.headers['location'] == '/runs'
        assert 'HttpOnly' in response.headers['set-cookie']
        assert client.get('/runs').status_code == 200
        assert client.get('/api/jobs').status_code == 200
        # With a session, a change needs the page's CSRF token.
        assert client.post('/api/runs/plan', json={'job': 'ParamJob'},
                           headers={'Origin': ORIGIN}).status_code == 403
        assert client.post('/api/runs/plan', json={'job': 'ParamJob'}, headers={
            'Origin': ORIGIN, 'X-CSRF-Token': csrf}).status_code == 200


def test_a_session_from_another_token_or_expired_is_refused(datastore_target):
    from beam_jobs.console import security
    with helpers.client(datastore_target, token='s3cret') as client:
        client.cookies.set(security.SESSION_COOKIE, security.session_value('other'))
        assert client.get('/api/jobs').status_code == 401
        client.cookies.set(security.SESSION_COOKIE, security.session_value('s3cret', 1000))
        assert client.get('/api/jobs').status_code == 401
        client.cookies.set(security.SESSION_COOKIE, security.session_value('s3cret'))
        assert client.get('/api/jobs').status_code == 200


def test_login_never_sends_you_to_another_site(datastore_target):
    with helpers.client(datastore_target, token='s3cret') as client:
        client.get('/login')
        for target in ('https://evil.example/', '//evil.example/', '/\\evil.example'):
            response = client.post('/login', follow_redirects=False, data={
                'token': 's3cret', 'csrf_token': client.cookies['beam_jobs_csrf'],
                'next': target})
            assert response.headers['location'] == '/'


@pytest.mark.parametrize('headers', [
    {'Origin': 'http://evil.example'},
    {'Origin': 'null'},
    {'Sec-Fetch-Site': 'cross-site'},
    {'Sec-Fetch-Site': 'same-site'},
    {'Origin': ORIGIN, 'Sec-Fetch-Site': 'same-origin'},   # no CSRF token
    {'Content-Type': 'text/plain'},                         # a form's, not a script's
])
def test_cross_site_changes_are_refused(client, store, headers):
    client.get('/')
    record = store.create('ParamJob')
    for path, body in (('/api/runs', {'job': 'ParamJob'}),
                       (f'/api/runs/{record.run_id}/cancel', {})):
        response = client.post(path, content=json.dumps(body),
                               headers={'Content-Type': 'application/json', **headers})
        assert response.status_code == 403, (path, response.text)
        assert 'Refused' in response.json()['error']
    assert _run_ids(store) == {record.run_id}
    assert store.get(record.run_id).status == runs.NEW


def test_a_wrong_csrf_token_is_refused(client, store):
    headers = {**_as_page(client), 'X-CSRF-Token': 'x' * 43}
    response = client.post('/api/runs/plan', json={'job': 'ParamJob'}, headers=headers)
    assert response.status_code == 403


def test_only_loopback_names_are_answered_without_a_token(datastore_target):
    # A page on a name that resolves to 127.0.0.1 (DNS rebinding) reads nothing.
    with helpers.client(datastore_target, base_url='http://rebound.example:8080') as client:
        response = client.get('/api/jobs')
        assert response.status_code == 403
        assert 'answers only at a loopback address' in response.json()['error']
    for base_url in ('http://localhost:8080', 'http://[::1]:8080'):
        with helpers.client(datastore_target, base_url=base_url) as client:
            assert client.get('/api/jobs').status_code == 200


def test_pages_carry_security_headers(client):
    response = client.get('/')
    assert "script-src 'self'" in response.headers['content-security-policy']
    assert response.headers['x-frame-options'] == 'DENY'
    assert 'SameSite=Strict' in response.headers['set-cookie']


# The command

def test_serve_refuses_a_non_loopback_address_without_a_token(capsys, monkeypatch):
    monkeypatch.delenv('BEAM_JOBS_TOKEN', raising=False)
    code = cli.main(['--registry', helpers.REGISTRY_MODULE, 'serve', '--host', '0.0.0.0'])
    assert code == cli.EXIT_USAGE
    assert 'give a token with --token or BEAM_JOBS_TOKEN' in capsys.readouterr().err


def test_serve_prints_the_url_and_serves_until_interrupted(datastore_target):
    proc = subprocess.Popen(
        [sys.executable, '-m', 'beam_jobs.cli', '--registry', helpers.REGISTRY_MODULE,
         'serve', '--port', '0'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=dict(os.environ))
    try:
        line = proc.stdout.readline()
        url = re.search(r'open (http://127\.0\.0\.1:\d+/)$', line.strip())
        assert url, (line, proc.stderr.read() if proc.poll() is not None else '')
        with urllib.request.urlopen(url.group(1) + 'api/jobs', timeout=30) as response:
            assert response.status == 200
            jobs = json.loads(response.read())['jobs']
        assert 'NotedJob' in [job['name'] for job in jobs]
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.5)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0


def test_serve_refuses_a_port_in_use(capsys, datastore_target):
    import socket
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code = cli.main(['--registry', helpers.REGISTRY_MODULE, 'serve', '--port', str(port)])
    assert code == cli.EXIT_USAGE
    assert f'Cannot listen on 127.0.0.1:{port}' in capsys.readouterr().err


# How records read

def test_progress_with_and_without_totals():
    view = views.progress_view({'read': {'NoteModel': 50, 'TagModel': 7},
                                'total': {'NoteModel': 200, 'TagModel': None},
                                'updated_msec': 1})
    assert view['kinds'][0] == {'kind': 'NoteModel', 'read': 50, 'total': 200,
                                'percent': 25.0}
    assert view['kinds'][1]['percent'] is None
    assert view['read'] == 57 and view['total'] is None and view['percent'] is None
    known = views.progress_view({'read': {'A': 3}, 'total': {'A': 4}, 'updated_msec': 1})
    assert known['percent'] == 75.0
    assert views.progress_view({}) is None


def test_a_running_run_shows_its_progress(client, store):
    record = store.create('SlowJob')
    store.update(record.run_id, progress={'read': {'NoteModel': 40},
                                          'total': {'NoteModel': 160},
                                          'updated_msec': runs.now_msec()})
    shown = client.get(f'/api/runs/{record.run_id}').json()
    assert shown['progress_view']['percent'] == 25.0
    page = client.get(f'/runs/{record.run_id}').text
    assert '<progress max="100" value="25.0">' in page and '40 / 160 (25.0%)' in page
    assert 'Cancel this run' in page


def test_labels_and_sources_read_plainly():
    record = runs.RunRecord(run_id='r', job_name='J', status=runs.COMPLETED, error_count=2)
    assert views.status_label(record) == 'Completed, 2 items failed'
    record.error_line_count = 1
    assert views.status_label(record) == 'Completed, 2 items failed, 1 error line'
    record.error_count = 0
    assert views.status_label(record) == 'Completed, 1 error line'
    assert sources.text({'type': 'export', 'path': '/e', 'timestamp': 't',
                         'entities': {'B': 2, 'A': 1}}) == 'export /e (taken t; A 1, B 2)'
    assert sources.text({'type': 'datastore', 'project': 'p',
                         'namespace': 'n'}) == 'Datastore of project p, namespace n'
    assert readable.duration(75) == '1 min 15 s' and readable.duration(4.14) == '4.1 s'


# A run's backup: revert it (dry run first, then confirmed), finish it.

def test_a_run_page_shows_its_backup_and_reverts_it_dry_run_first(
        client, store, datastore_target):
    _put_notes(datastore_target, lambda: fx.notes(6, deleted_every=3))
    run_id = _start(client, job='TopicTagMigrationJob')
    run = helpers.wait_for(store, run_id, runs.TERMINAL)
    assert run.status == runs.COMPLETED, run.error
    page = client.get(f'/runs/{run_id}').text
    assert 'Before-images of <strong data-field="backup_writes">6</strong> writes' in page
    assert 'id="revert-dry-run"' in page

    response = client.post(f'/api/runs/{run_id}/revert', json={'dry_run': True},
                           headers=_as_page(client))
    assert response.status_code == 201, response.text
    dry = helpers.wait_for(store, response.json()['run_id'], runs.TERMINAL)
    assert dry.status == runs.COMPLETED and dry.revert_of == run_id, dry.error
    assert 'DRY RUN: would delete 4 TagModel (nothing was written)' in store.output(dry.run_id)
    page = client.get(f'/runs/{dry.run_id}').text
    assert f'id="revert-confirm-button" class="danger" data-revert="{run_id}"' in page

    response = client.post(f'/api/runs/{run_id}/revert', json={'reason': 'wrong tags'},
                           headers=_as_page(client))
    assert response.status_code == 201, response.text
    real = helpers.wait_for(store, response.json()['run_id'], runs.TERMINAL)
    assert real.status == runs.COMPLETED, real.error
    assert 'WRITES: delete 4 TagModel' in store.output(real.run_id)
    refused = client.post(f'/api/runs/{dry.run_id}/revert', json={},
                          headers=_as_page(client))
    assert refused.status_code == 400 and 'was a dry run' in refused.json()['error']


def test_a_run_with_failed_items_is_retried_from_its_page_over_those_items(
        client, store, datastore_target):
    _put_notes(datastore_target, lambda: [
        fx.NoteModel(id=f'note-{i}', text='bad' if i in (1, 3) else 'fine', topic='art')
        for i in range(6)])
    run_id = _start(client, job='FailingMapJob')
    run = helpers.wait_for(store, run_id, runs.TERMINAL)
    assert run.error_count == 2 and run.backup['state'] == 'kept', run
    page = client.get(f'/runs/{run_id}').text
    assert f'data-retry="{run_id}"' in page and 'Retry what failed' in page

    wrong = client.post('/api/runs', json={'job': 'TopicTagMigrationJob',
                                           'retry_failed': run_id}, headers=_as_page(client))
    assert wrong.status_code == 400
    assert f'Run {run_id} is a run of FailingMapJob' in wrong.json()['error']
    retry_id = _start(client, job='FailingMapJob', retry_failed=run_id)
    retry = helpers.wait_for(store, retry_id, runs.TERMINAL)
    assert retry.retry_of == run_id
    assert retry.counters['entities_read.NoteModel'] == 2   # only the two that failed


def test_the_release_plan_lists_jobs_in_order_with_the_gates_verdict(client, datastore_target):
    from beam_jobs.records import requests as request_records
    requests = request_records.RequestStore(datastore_target)
    requests.create('TopicTagMigrationJob', follows=['NoteAuditJob'])
    requests.create('NoteAuditJob')
    requests.create('NoSuchJobHere')
    plan = client.get('/api/plan').json()
    assert [job['job_name'] for job in plan['jobs']] == [
        'NoteAuditJob', 'TopicTagMigrationJob', 'NoSuchJobHere']
    by_name = {job['job_name']: job for job in plan['jobs']}
    assert by_name['NoteAuditJob']['state'] == 'unrehearsed'
    assert by_name['NoteAuditJob']['next_step'] == 'beam-jobs rehearse NoteAuditJob --export PATH'
    assert by_name['TopicTagMigrationJob']['follows'] == ['NoteAuditJob']
    assert by_name['NoSuchJobHere']['state'] == 'unknown'
    page = client.get('/plan').text
    assert 'Release plan' in page and 'Not rehearsed' in page and 'Code not here' in page


def test_unknown_pages_are_styled_and_a_request_has_its_own_address(client, datastore_target):
    from beam_jobs.records import requests as request_records
    for path in ('/no/such/page', '/requests/request-Nope-1-1'):
        page = client.get(path)
        assert page.status_code == 404
        assert '<link rel="stylesheet" href="/static/console.css">' in page.text, path
    assert client.get('/api/no-such').json()['error'].startswith('There is no page')
    request = request_records.RequestStore(datastore_target).create('NoteAuditJob')
    found = client.get(f'/requests/{request.request_id}', follow_redirects=False)
    assert found.status_code == 303 and found.headers['location'] == \
        f'/requests#{request.request_id}'
