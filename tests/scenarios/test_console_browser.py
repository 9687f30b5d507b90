"""The console in a real browser: Debian's Chromium, driven by Playwright.

Each test serves the console on a free loopback port over its own namespace
of the test emulator, and does what a release coordinator does: start a run
through the confirmation, watch it end, read its failed items first, cancel
a long run, approve a rehearsal. The screenshots of the main pages in
docs/console/ come from these tests: each run writes them to
BEAM_JOBS_SCREENSHOTS (`make screenshots` sets it to docs/console), else to
a temporary folder, so a test run leaves the checkout as it was.

A missing browser fails these tests; it never skips them (`make test`
installs it: see the Makefile's `browser` step).
"""

import atexit
import json
import os
import pathlib
import re
import shutil
import tempfile
import time
import urllib.request

import pytest

from beam_jobs import identity, testing
from beam_jobs.records import runs
from beam_jobs.records import rehearsals as rehearsal_record
from tests import console_helpers as helpers
from tests import job_fixtures as fx

CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update',
                 '--disable-sync']
SCREENSHOTS = pathlib.Path(os.environ.get('BEAM_JOBS_SCREENSHOTS')
                           or tempfile.mkdtemp(prefix='beam-jobs-screenshots-'))
if not os.environ.get('BEAM_JOBS_SCREENSHOTS'):
    # Taken only so the pages are drawn whole; nothing is left in /tmp.
    atexit.register(shutil.rmtree, SCREENSHOTS, True)
LONG = 60_000   # ms: a run in its own process, on two shared cores


@pytest.fixture(scope='module')
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f'{CHROMIUM} is missing: the console\'s browser tests need '
                    'Debian\'s chromium package. Install it with `apt-get install '
                    '-y chromium` (as root; `make test` does).', pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail('The playwright package is missing: `.venv/bin/pip install -r '
                    'requirements-dev.txt` (or `make install`).', pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def console_url(datastore_target):
    with helpers.served(datastore_target) as url:
        yield url


@pytest.fixture
def context(browser, console_url):
    opened = browser.new_context(viewport={'width': 1280, 'height': 900},
                                 accept_downloads=True)
    opened.grant_permissions(['clipboard-read', 'clipboard-write'], origin=console_url)
    opened.set_default_timeout(15_000)
    yield opened
    opened.close()


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture
def store(datastore_target):
    return runs.RunStore(datastore_target)


def _expect():
    from playwright.sync_api import expect
    return expect


def _screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f'{name}.png'), full_page=True)


def _put(target, make):
    with testing.ndb_context(target):
        testing.put_models(target, make())


def test_start_a_run_from_the_page_and_read_its_failed_item_first(
        page, console_url, datastore_target, store):
    expect = _expect()
    evil = '<img src=x onerror="window.__xss=1">'
    _put(datastore_target, lambda: [*fx.notes(6), fx.NoteModel(id='note-bad', text='bad'),
                                    fx.NoteModel(id=evil, text='bad')])
    page.goto(console_url + '/')
    page.fill('#job-filter', 'failing')
    expect(page.locator('#job-FailingMapJob')).to_be_visible()
    expect(page.locator('#job-TopicCountJob')).to_be_hidden()

    job = page.locator('#job-FailingMapJob')
    job.locator('summary', has_text='Start a run').click()
    job.locator('.shard-count').fill('0')
    job.locator('.review').click()
    expect(job.locator('.form-error')).to_contain_text(
        'shard_count must be a positive whole number')
    expect(page.locator('#confirm-start')).to_be_hidden()

    job.locator('.param-name').fill('ticket')
    job.locator('.param-value').fill('42')
    job.locator('.add-param').click()
    job.locator('.param-name').nth(1).fill('label')
    job.locator('.param-value').nth(1).fill('release <b>1</b>')
    job.locator('.shard-count').fill('2')
    job.locator('.review').click()
    dialog = page.locator('#confirm-start')
    expect(dialog).to_be_visible()
    expect(dialog.locator('[data-confirm="destination"]')).to_contain_text(
        'on the local Datastore emulator at ' + os.environ['DATASTORE_EMULATOR_HOST'])
    expect(dialog.locator('[data-confirm="writes"]')).to_contain_text(
        'may put or delete entities of kinds NoteModel')
    expect(dialog.locator('[data-confirm="params"]')).to_have_text(
        '{"ticket":42,"label":"release <b>1</b>"}')
    _screenshot(page, 'start-confirmation')
    dialog.locator('#confirm-start-button').click()

    page.wait_for_url(re.compile(r'/runs/FailingMapJob-\d+-\d+$'))
    run_id = page.url.rsplit('/', 1)[1]
    expect(page.locator('.run-status .status')).to_have_text(
        'Completed, 2 items failed', timeout=LONG)
    assert store.get(run_id).params == {'ticket': 42, 'label': 'release <b>1</b>'}

    all_lines = page.locator('[data-panel="all"] .line')
    expect(all_lines.nth(0)).to_have_text(re.compile(r'^ERROR in map for NoteModel/'))
    expect(all_lines.nth(1)).to_have_text(re.compile(r'^ERROR in map for NoteModel/'))
    expect(all_lines.nth(2)).to_have_text("['ok', 6]")
    expect(page.locator('[data-panel="all"]')).to_contain_text(
        f'ERROR in map for NoteModel/{evil}: ValueError')
    assert page.evaluate('window.__xss') is None
    page.click('.tab[data-tab="errors"]')
    expect(page.locator('[data-panel="all"]')).to_be_hidden()
    expect(page.locator('[data-panel="errors"] .line')).to_have_count(2)

    page.click('#copy-output')
    expect(page.locator('#copy-note')).to_have_text('Copied 3 lines.')
    copied = page.evaluate('navigator.clipboard.readText()')
    assert copied.startswith('ERROR in map for NoteModel/') and copied.endswith("['ok', 6]\n")
    with page.expect_download() as download:
        page.click('text=Download as text')
    assert download.value.suggested_filename == f'{run_id}.txt'
    assert pathlib.Path(download.value.path()).read_text() == copied

    page.click('.tab[data-tab="all"]')
    _screenshot(page, 'run')
    page.goto(console_url + '/runs')
    row = page.locator(f'tr[data-run-id="{run_id}"]')
    expect(row).to_contain_text('Completed, 2 items failed')
    expect(row.locator('td').nth(6)).to_have_text('2')
    _screenshot(page, 'runs')
    page.goto(console_url + '/')
    expect(page.locator('#job-FailingMapJob')).to_contain_text(run_id)
    _screenshot(page, 'jobs')


def test_cancel_a_long_run_while_the_runs_page_follows_it(
        context, page, console_url, datastore_target, store):
    expect = _expect()
    _put(datastore_target, lambda: fx.notes(200))
    # Started as a script would start it: JSON, no browser.
    request = urllib.request.Request(
        console_url + '/api/runs', data=json.dumps({'job': 'SlowJob'}).encode(),
        headers={'Content-Type': 'application/json'}, method='POST')
    with urllib.request.urlopen(request, timeout=30) as response:
        run_id = json.loads(response.read())['run_id']

    runs_page = context.new_page()
    polls = []
    runs_page.on('request', lambda r: polls.append(time.monotonic())
                 if '/api/runs?' in r.url else None)
    runs_page.goto(console_url + '/runs')
    expect(runs_page.locator('[data-poll-state]')).to_contain_text('Refreshing')

    page.goto(console_url + f'/runs/{run_id}')
    expect(page.locator('.run-status .status')).to_have_text('Running', timeout=LONG)
    # Local runs report entities read every couple of seconds; the emulator
    # keeps no kind statistics, so there is no total to make a percentage of.
    expect(page.locator('#progress .progress-text')).to_have_text(
        re.compile(r'^\d+ read \(total unknown\)$'), timeout=10_000)
    expect(page.locator('.record [data-field="runner"]')).to_have_text('FnApiRunner')
    _screenshot(page, 'run-running')
    expect(runs_page.locator(f'tr[data-run-id="{run_id}"]')).to_contain_text('Running')

    page.click('#cancel-button')
    dialog = page.locator('#confirm-cancel')
    expect(dialog).to_be_visible()
    # The loopback console without a token acts as its machine's user: no name field.
    me = identity.machine_user()
    expect(dialog.locator('.signed-in-name')).to_have_text(me)
    expect(dialog.locator('#cancel-user')).to_have_count(0)
    dialog.locator('#confirm-cancel-button').click()
    expect(page.locator('.run-status .status')).to_have_text('Canceled', timeout=LONG)
    expect(page.locator('.error-box')).to_contain_text(f'Canceled by {me}.')
    expect(page.locator('#cancel-button')).to_have_count(0)
    assert store.get(run_id).status == runs.CANCELED

    # The runs page saw the end by itself, then stopped asking.
    expect(runs_page.locator(f'tr[data-run-id="{run_id}"]')).to_contain_text(
        'Canceled', timeout=10_000)
    expect(runs_page.locator('[data-poll-state]')).to_have_text(
        'All shown runs are finished.')
    asked = len(polls)
    runs_page.wait_for_timeout(4500)
    assert len(polls) == asked


def _signed_in(browser, url, token, landing):
    """A browser of its own, signed in with `token` through the login page."""
    opened = browser.new_context(viewport={'width': 1280, 'height': 900})
    opened.set_default_timeout(15_000)
    page = opened.new_page()
    page.goto(f'{url}/login?next={landing}')
    page.fill('#token', token)
    page.click('button[type=submit]')
    page.wait_for_url(url + landing)
    return opened, page


def test_sign_off_as_the_signed_in_person(browser, datastore_target, tmp_path, monkeypatch):
    """A console with a token per person: the approver signs off under his
    own name (no name field); someone else is told who may."""
    import hashlib

    from beam_jobs import console as console_lib
    from beam_jobs.records import audit as audit_lib
    from beam_jobs.records import requests as request_records
    expect = _expect()
    monkeypatch.setenv('BEAM_JOBS_APPROVERS', 'sean')
    rehearsals = rehearsal_record.RehearsalStore(datastore_target)
    failed = rehearsals.create(
        'FailingMapJob', verdict='failed', reasons=['1 item failed: NoteModel/note-bad'],
        failed_items=[{'step': 'map', 'kind': 'NoteModel', 'key': 'note-bad',
                       'reason': 'ValueError: cannot migrate note note-bad', 'line': ''}])
    passed = rehearsals.create(
        'TopicTagMigrationJob', verdict='passed', rehearsed_by='sean',
        reasons=['the job completed with no failed item', 'every verify job passed'],
        code_version={'commit': '3f9c2e1', 'dirty': False,
                      'source_file': 'tests/job_fixtures.py', 'source_sha256': 'ab' * 32},
        export={'path': '/exports/2026-11-30T10:47:47_109', 'timestamp': '2026-11-30T10:47:47',
                'entities': {'NoteModel': 200}},
        run_id='TopicTagMigrationJob-1764500000000-000001',
        verify=[{'job': 'TopicCountJob', 'run_id': 'TopicCountJob-1764500009000-000002',
                 'status': 'completed', 'passed': True, 'error_lines': 0, 'reason': ''}],
        writes={'put': {'TagModel': 180}, 'delete': {'NoteModel': 20}},
        durations={'job': 41.3, 'verify': {'TopicCountJob': 12.0}, 'total': 58.9},
        coordinator_notes='Run **after** the weekly export.')
    asked = request_records.RequestStore(datastore_target).create(
        'TopicCountJob', requested_by='ana', verify=['TopicTagMigrationJob'],
        note='counts topics before the tag migration',
        link='https://github.com/example/jobs/pull/7')
    audit = audit_lib.AuditStore(datastore_target)
    audit.append('TopicTagMigrationJob', audit_lib.REFUSED, user='rel', machine='release-1',
                 runner='DataflowRunner', project='prod',
                 reason='TopicTagMigrationJob has no approved rehearsal, so it may not run '
                        'in production: rehearse it …')
    audit.append('TopicTagMigrationJob', audit_lib.APPROVED, user='rel', machine='release-1',
                 runner='DataflowRunner', project='prod', rehearsal_id=passed.rehearsal_id,
                 approved_by=['sean'])
    users_file = tmp_path / 'users'
    users_file.write_text(''.join(f'{name}: {hashlib.sha256(token.encode()).hexdigest()}\n'
                                  for name, token in (('sean', 'tok-sean'), ('ana', 'tok-ana'))))
    users = console_lib.read_users(str(users_file))

    with helpers.served(datastore_target, users=users, loopback_only=False) as url:
        opened, page = _signed_in(browser, url, 'tok-ana', '/rehearsals')
        try:
            report = page.locator(f'[data-rehearsal-id="{passed.rehearsal_id}"]')
            expect(report.locator('.sign-off-refused')).to_contain_text(
                'Only the named approvers (sean) may sign off.')
            expect(report.locator('.approve-form')).to_have_count(0)
            expect(page.locator('.signed-in')).to_contain_text('ana')
        finally:
            opened.close()

        opened, page = _signed_in(browser, url, 'tok-sean', '/rehearsals')
        try:
            passed_report = page.locator(f'[data-rehearsal-id="{passed.rehearsal_id}"]')
            failed_report = page.locator(f'[data-rehearsal-id="{failed.rehearsal_id}"]')
            expect(passed_report).to_contain_text('every verify job passed')
            expect(passed_report).to_contain_text('put 180 TagModel')
            expect(failed_report).to_contain_text('1 item failed: NoteModel/note-bad')
            expect(failed_report.locator('.approve-form')).to_have_count(0)
            expect(passed_report.locator('.signed-in-name')).to_have_text('sean')
            assert passed_report.locator('.approve-user').count() == 0   # no name field
            passed_report.locator('.approve-note').fill('counts match the export')
            passed_report.locator('button', has_text='Approve').click()
            expect(passed_report.locator('.approvals')).to_contain_text('sean', timeout=10_000)
            expect(passed_report.locator('.approvals')).to_contain_text('counts match the export')
            expect(passed_report.locator('.status')).to_have_text('Passed · approved')
            approval = rehearsals.get(passed.rehearsal_id).approvals[0]
            assert (approval['user'], approval['approvers']) == ('sean', ['sean'])
            _screenshot(page, 'rehearsals')

            page.goto(url + '/requests')
            row = page.locator(f'[data-request-id="{asked.request_id}"]')
            expect(row).to_contain_text('open')
            expect(row).to_contain_text('ana')
            _screenshot(page, 'requests')
            row.locator('.reject-note').fill('rehearse it on this week\'s export')
            row.locator('button', has_text='Reject').click()
            expect(page.locator(f'[data-request-id="{asked.request_id}"] .request-state')
                   ).to_contain_text("rejected by sean: rehearse it on this week's export")
            assert request_records.RequestStore(datastore_target).get(
                asked.request_id).rejected['by'] == 'sean'

            page.goto(url + '/audit')
            rows = page.locator('tr.decision')
            expect(rows).to_have_count(2)
            expect(rows.nth(0)).to_contain_text(f'{passed.rehearsal_id} (approved by sean)')
            expect(rows.nth(1)).to_contain_text('refused')
            expect(rows.nth(1)).to_contain_text('release-1')
            _screenshot(page, 'audit')
        finally:
            opened.close()


def test_a_token_is_asked_once(browser, datastore_target):
    expect = _expect()
    with helpers.served(datastore_target, token='s3cret', loopback_only=False) as url:
        opened = browser.new_context()
        try:
            page = opened.new_page()
            response = page.goto(url + '/runs')
            assert response.status == 401
            page.fill('#token', 'wrong')
            page.click('button[type=submit]')
            expect(page.locator('.error-box')).to_have_text(
                'That is not a token of this console.')
            page.fill('#token', 's3cret')
            page.click('button[type=submit]')
            expect(page.locator('h1')).to_have_text('Runs')
            assert page.url == url + '/runs'
            assert page.goto(url + '/').status == 200
        finally:
            opened.close()


def test_a_dataflow_run_watched_on_its_page(page, console_url, datastore_target, store,
                                             monkeypatch):
    """The page of a Dataflow run follows it as a local run's does: progress
    against the export's count, attempted counters, stages; and when the job
    fails, why (the stand-in plays the service's answers)."""
    import uuid as uuid_lib

    from tests import dataflow_stub
    from tests.scenarios import test_dataflow_watch as watch_tests
    expect = _expect()
    monkeypatch.setenv('BEAM_JOBS_FOLLOW_INTERVAL', '0')
    stub = dataflow_stub.DataflowStub().start()
    try:
        run_id = store.create('InteractionAuditOneOffJob').run_id
        store.transition(run_id, runs.QUEUED, runner='DataflowRunner',
                         shard_count=8, source={'type': 'export', 'path': 'gs://prod/exports/x',
                                                'timestamp': '2026-11-30T10:47:47_109',
                                                'entities': {'ExplorationModel': 12}})
        store.transition(run_id, runs.STARTED)
        job_id = f'2026-12-02_01_00_00-{uuid_lib.uuid4().int % 10**12}'
        stub.jobs[job_id] = {'id': job_id, 'currentState': 'JOB_STATE_RUNNING',
                             'startTime': '2026-01-01T09:50:00Z'}
        store.update(run_id, dataflow_job_id=job_id, dataflow_region='europe-west1',
                     dataflow_project=testing.TEST_PROJECT, dataflow_endpoint=stub.endpoint,
                     console_url=f'https://console.cloud.google.com/dataflow/jobs/'
                                 f'europe-west1/{job_id}?project={testing.TEST_PROJECT}',
                     progress={'read': {'ExplorationModel': 0},
                               'total': {'ExplorationModel': 12}, 'updated_msec': 0})
        running = dataflow_stub.Snapshot(
            'JOB_STATE_RUNNING', watch_tests._running(9, 9),   # pylint: disable=protected-access
            stages=[dataflow_stub.stage('F1', 'succeeded'), dataflow_stub.stage('F2', 'running')])
        stub.play(job_id, [running] * 4 + watch_tests.FAILING[1:])
        page.goto(f'{console_url}/runs/{run_id}')
        expect(page.locator('#progress-body')).to_contain_text('9 / 12 (75.0%)', timeout=LONG)
        expect(page.locator('#stages')).to_contain_text('F1 succeeded, F2 running')
        expect(page.locator('#counters-attempted')).to_be_visible()
        _screenshot(page, 'run-dataflow')
        expect(page.locator('#cause')).to_contain_text('ExplorationModel/exp-000007',
                                                       timeout=LONG)
        expect(page.locator('.run-status')).to_contain_text('Failed')
        expect(page.locator('#cause')).not_to_contain_text('Traceback')
        _screenshot(page, 'run-dataflow-failed')
    finally:
        stub.stop()


def test_cancel_a_rehearsal_on_dataflow_from_its_page(browser, datastore_target, gcs,
                                                      capsys, monkeypatch):
    """A rehearsal running on Dataflow (the stand-in) shows a Cancel button on
    its page; pressing it cancels the job in flight and the page shows the
    rehearsal failed, canceled by the console's user."""
    import uuid as uuid_lib

    from beam_jobs import cli
    from beam_jobs import console as console_lib
    from beam_jobs.export import write_export
    from pipelines import sample_data
    from tests import dataflow_stub, rehearsal_registry
    from tests.storage_emulator import BUCKET
    expect = _expect()
    monkeypatch.setenv('BEAM_JOBS_FOLLOW_INTERVAL', '0')
    with testing.ndb_context(datastore_target):
        export = write_export(sample_data.explorations(20),
                              f'gs://{BUCKET}/exports/{uuid_lib.uuid4().hex[:8]}',
                              project=datastore_target.project)
    stub = dataflow_stub.DataflowStub().start()
    try:
        stub.play_next([dataflow_stub.Snapshot('JOB_STATE_RUNNING')])
        code = cli.main(['--registry', 'tests.rehearsal_registry', 'rehearse',
                         'ExplorationContentMigrationOneOffJob', '--export', export,
                         '--no-wait', '--runner=DataflowRunner',
                         f'--project={testing.TEST_PROJECT}', '--region=europe-west1',
                         f'--temp_location=gs://{BUCKET}/{uuid_lib.uuid4().hex[:8]}/tmp',
                         f'--dataflow_endpoint={stub.endpoint}', '--no_auth'])
        out, err = capsys.readouterr()
        assert code == 0, err
        rehearsal_id = re.match(r'Rehearsal ID: (\S+)', out).group(1)
        served_app = console_lib.create_app(console_lib.Console(
            rehearsal_registry.REGISTRY, runs.RunStore(datastore_target),
            'tests.rehearsal_registry'))
        with helpers.served(datastore_target, served_app=served_app) as url:
            page = browser.new_page(viewport={'width': 1280, 'height': 900})
            page.goto(f'{url}/rehearsals/{rehearsal_id}')
            expect(page.locator('.rehearsal .status')).to_contain_text('Rehearsing')
            expect(page.locator('.cancel-rehearsal-form .signed-in-name')).to_have_text(
                identity.machine_user())
            page.get_by_role('button', name='Cancel this rehearsal').click()
            expect(page.locator('.reasons')).to_contain_text(
                f'Canceled by {identity.machine_user()}.', timeout=LONG)
            expect(page.locator('.rehearsal .status')).to_contain_text('Failed')
            expect(page.locator('.cancel-rehearsal-form')).to_have_count(0)
            page.close()
        assert len(stub.requests_of('PUT')) == 1
    finally:
        stub.stop()


def test_each_approval_shows_its_signer_and_a_verification_badge(
        page, console_url, datastore_target, tmp_path, monkeypatch):
    """Signed mode: a signed approval shows its signer and a verified badge,
    one written straight into the records a failed one; approving offers
    the command to run where the key is."""
    from beam_jobs.rehearsal import signoff
    from tests import signing_keys
    expect = _expect()
    keys = tmp_path / 'keys'
    monkeypatch.setenv('BEAM_JOBS_ALLOWED_SIGNERS', str(signing_keys.make(keys, ['alice'])))
    monkeypatch.setenv('BEAM_JOBS_SIGNING_KEY', str(keys / 'alice'))
    rehearsals = rehearsal_record.RehearsalStore(datastore_target)
    signed, forged = (rehearsals.create('TopicCountJob', verdict='passed', rehearsed_by='sean',
                                        export={'timestamp': '2026-11-30T10:47:47'})
                      for _ in range(2))
    signoff.approve(datastore_target, signed.rehearsal_id, 'alice', 'ok', project='prod')
    rehearsals.approve(forged.rehearsal_id, 'alice', 'written by hand')

    page.goto(console_url + '/rehearsals')
    signed_report = page.locator(f'[data-rehearsal-id="{signed.rehearsal_id}"]')
    forged_report = page.locator(f'[data-rehearsal-id="{forged.rehearsal_id}"]')
    expect(signed_report.locator('.signature-verified')).to_have_text(
        'signed by alice for prod/(default)')
    expect(forged_report.locator('.signature-invalid')).to_contain_text(
        'does not verify: it has no signature')
    expect(signed_report.locator('.status')).to_have_text('Passed · approved')
    expect(forged_report.locator('.status')).to_have_text('Passed')
    expect(forged_report.locator('.approve-command')).to_have_text(
        f'beam-jobs approve {forged.rehearsal_id} --project PROJECT')
    expect(forged_report.locator('.approve-form')).to_have_count(0)
    forged_report.locator('.copy-command').click()
    expect(forged_report.locator('.copy-command')).to_have_text('Copied')
    assert page.evaluate('navigator.clipboard.readText()') == (
        f'beam-jobs approve {forged.rehearsal_id} --project PROJECT')
    _screenshot(page, 'signed-approvals')


def test_the_estimate_on_the_start_form_and_the_budget_on_a_run_page(
        page, console_url, datastore_target, store, tmp_path, monkeypatch):
    """Starting a Dataflow run, the confirmation shows what it will cost (the
    rehearsal's measured CPU, scaled to the export) and its guardrails; a
    Dataflow run's page shows its estimate and, while it goes, the budget left."""
    from beam_jobs.export import write_export
    from beam_jobs.lifecycle import estimate
    expect = _expect()
    for name, value in {'RUNNER': 'DataflowRunner', 'PROJECT': testing.TEST_PROJECT,
                        'REGION': 'us-central1', 'BUCKET': 'estimates',
                        'REQUIRE_REHEARSAL': 'false', 'MAX_COST_USD': '5',
                        'DATAFLOW_ARGS': '--no_auth'}.items():
        monkeypatch.setenv(f'BEAM_JOBS_{name}', value)
    with testing.ndb_context(datastore_target):
        export = write_export(fx.notes(12), str(tmp_path / 'notes'),
                              project=datastore_target.project)
    # A rehearsal measured 6 CPU seconds for 3 notes: 2 s a note, 24 s for 12.
    rehearsal_record.RehearsalStore(datastore_target).create(
        'TopicCountJob', verdict='passed',
        measured={'run_id': 'r', 'runner': 'FnApiRunner', 'cpu_seconds': 6.0, 'entities': 3})
    page.goto(console_url + '/')
    job = page.locator('#job-TopicCountJob')
    job.locator('summary', has_text='Start a run').click()
    job.locator('.export').fill(export)
    job.locator('.review').click()
    dialog = page.locator('#confirm-start')
    expect(dialog.locator('[data-confirm="destination"]')).to_contain_text('Dataflow')
    expect(dialog.locator('[data-confirm="estimate"]')).to_have_text(
        f'about {24 / 3600:.4g} vCPU hours, 1.2 s with 20 worker(s), '
        + estimate.usd_text(24 / 3600 * (0.056 + 3.75 * 0.003557)))
    expect(dialog.locator('[data-confirm="estimate_assumptions"]')).to_contain_text(
        '12 entities; CPU per entity from rehearsal')
    expect(dialog.locator('[data-confirm="guardrails"]')).to_have_text(
        'at most 20 workers (max_num_workers); canceled once its reported resources '
        'cost more than $5.00 (max_cost_usd)')
    _screenshot(page, 'start-confirmation-dataflow')

    # A run on Dataflow that reported $1.25 of its $5.00 so far.
    kept = estimate.estimate('TopicCountJob', 12, estimate.Measurement(6.0, 3, 'rehearsal x'),
                             20, 'us-central1').as_record()
    run_id = store.create('TopicCountJob').run_id
    store.transition(run_id, runs.QUEUED, runner='DataflowRunner', estimate=kept,
                     budget={'max_num_workers': 20, 'flexrs': True, 'max_cost_usd': 5.0,
                             'rates': None})
    store.transition(run_id, runs.STARTED, usage={'vcpu_seconds': 30.0, 'cost_usd': 1.25})
    page.goto(f'{console_url}/runs/{run_id}')
    cost = page.locator('#cost')
    expect(cost.locator('[data-field="estimate"]')).to_contain_text(
        f'about {24 / 3600:.4g} vCPU hours')
    expect(cost.locator('[data-field="beside_actuals"]')).to_contain_text(
        f'vCPU hours {24 / 3600:.4f} estimated, {30 / 3600:.4f} reported (+25%)')
    expect(cost.locator('[data-field="guardrails"]')).to_contain_text('FlexRS')
    expect(page.locator('#budget-left')).to_have_text(
        'Budget left: $3.75 of $5.00 left ($1.25 spent, at list rates)')


def test_the_release_plan_follows_repair_then_migration_and_lists_read_at_1280(
        browser, datastore_target, tmp_path, monkeypatch):
    """Repair → migration (rehearsed over the repair's after state) →
    approvals, on the plan page: the migration waits until the repair has
    run. Then every list page, with 60-character ids, fits 1,280 px."""
    import datetime
    import hashlib

    from beam_jobs import console as console_lib
    from beam_jobs.lifecycle import code_version
    from beam_jobs.records import requests as request_records
    expect = _expect()
    monkeypatch.setenv('BEAM_JOBS_APPROVERS', 'sean')
    repair, migration = fx.TopicCountJob, fx.TopicTagMigrationJob
    rehearsals = rehearsal_record.RehearsalStore(datastore_target)
    taken = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S_1')

    def rehearsed(job, **fields):
        return rehearsals.create(
            job.__name__, verdict='passed', rehearsed_by='ada',
            code_version=code_version.of(job, {}), export={'timestamp': taken},
            reasons=['the job completed with no failed item'], **fields)
    repaired = rehearsed(repair, after_state='/after/repair')
    migrated = rehearsed(migration, follows=[{'job': repair.__name__,
                                              'rehearsal_id': repaired.rehearsal_id}])
    users_file = tmp_path / 'users'
    users_file.write_text(f'sean: {hashlib.sha256(b"tok-sean").hexdigest()}\n')
    store = runs.RunStore(datastore_target)

    def verdicts(page, url):
        page.goto(url + '/plan')
        return [(row.get_attribute('data-job'), row.locator('[data-field=state]').inner_text())
                for row in page.locator('tr.planned').all()]

    with helpers.served(datastore_target, users=console_lib.read_users(str(users_file)),
                        loopback_only=False) as url:
        opened, page = _signed_in(browser, url, 'tok-sean', '/plan')
        try:
            assert verdicts(page, url) == [(repair.__name__, 'Not approved'),
                                           (migration.__name__, 'Not approved')]
            # The migration approved first: it waits for the repair.
            for record in (migrated, repaired):
                page.goto(url + '/rehearsals')
                report = page.locator(f'[data-rehearsal-id="{record.rehearsal_id}"]')
                report.locator('button', has_text='Approve').click()
                expect(report.locator('.approved-by-you')).to_be_visible(timeout=10_000)
                expect(report.locator('.approve-form')).to_have_count(0)
                if record is migrated:
                    assert verdicts(page, url)[1] == (migration.__name__,
                                                      'Waits for a job before it')
                    expect(page.locator(f'tr[data-job="{migration.__name__}"]')
                           ).to_contain_text(f'run {repair.__name__} first')
            assert verdicts(page, url) == [(repair.__name__, 'May run now'),
                                           (migration.__name__, 'Waits for a job before it')]
            _screenshot(page, 'release-plan')
            # A second approval by the same person is refused.
            again = opened.request.post(
                f'{url}/api/rehearsals/{migrated.rehearsal_id}/approve', data={},
                headers={'Origin': url, 'Sec-Fetch-Site': 'same-origin',
                         'X-CSRF-Token': next(c['value'] for c in opened.cookies()
                                              if c['name'] == 'beam_jobs_csrf')})
            assert again.status == 409 and 'sean already approved' in again.json()['error']

            # The repair runs in production (its record completes): the migration may run.
            ran = store.create(repair.__name__)
            for status in (runs.QUEUED, runs.STARTED):
                store.transition(ran.run_id, status)
            store.transition(ran.run_id, runs.COMPLETED, source={
                'type': 'datastore', 'project': datastore_target.project,
                'namespace': datastore_target.namespace})
            assert verdicts(page, url) == [(repair.__name__, 'Ran'),
                                           (migration.__name__, 'May run now')]

            # Long ids everywhere: no list page overflows 1,280 px.
            long_job = 'ExplorationStatesSchemaVersionFortyTwoMigrationJ'   # id: 69 chars
            store.create(long_job)
            rehearsals.create(long_job, verdict='failed', reasons=['x' * 200])
            request_records.RequestStore(datastore_target).create(
                long_job, verify=[long_job], note='n' * 300, params={'p': 'v' * 120})
            for path in ('/', '/runs', '/rehearsals', '/requests', '/audit', '/plan'):
                page.goto(url + path)
                width = page.evaluate('document.documentElement.scrollWidth')
                assert width <= 1280, f'{path} is {width} px wide'
        finally:
            opened.close()
