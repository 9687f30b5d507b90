"""The team's sign-off, as the production guide describes it, across machines.

A second emulator stands in for the Datastore of the team's shared records
(`records_project`, `BEAM_JOBS_RECORDS_EMULATOR_HOST`); each machine (the
author's, the server jobs admin's, the release coordinator's) has its own
user, its own BEAM_JOBS_HOME and its own namespace of the local emulator, so
nothing passes between them but the shared records. The release machine
submits to Dataflow (the local stand-in) through the production gate.
"""

import hashlib
import os
import re
import sys
import textwrap
import time
import uuid

import pytest

from beam_jobs import cli, emulator, testing
from beam_jobs.export import write_export
from beam_jobs.lifecycle import follow, record_stores
from beam_jobs.records import audit as audit_lib
from beam_jobs.records import rehearsals as rehearsal_records
from beam_jobs.records import runs
from beam_jobs.records import requests as request_records
from beam_jobs.target import Target
from pipelines import sample_data
from tests import console_helpers
from tests import job_fixtures as fx
from tests.storage_emulator import BUCKET

MIGRATION = 'ExplorationContentMigrationOneOffJob'
VALIDATION = 'ExplorationStatesSchemaValidationOneOffJob'
REPAIR = 'ExplorationContentRepairOneOffJob'
EXPECTED = os.path.join(os.path.dirname(__file__), '..', '..', 'pipelines', 'expected',
                        'exploration_content_migration.txt')
REGISTRY = ['--registry', 'tests.rehearsal_registry']


@pytest.fixture(scope='module')
def shared_emulator():
    running = emulator.start(project='team-records')
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def team(shared_emulator, datastore_emulator, monkeypatch, tmp_path):
    """The shared records (a namespace of their own per test) and a way to
    sit at one machine or another."""
    monkeypatch.setenv('BEAM_JOBS_RECORDS_PROJECT', 'team-records')
    monkeypatch.setenv('BEAM_JOBS_RECORDS_EMULATOR_HOST', shared_emulator.host)
    monkeypatch.setenv('BEAM_JOBS_RECORDS_NAMESPACE', f'team{uuid.uuid4().hex[:8]}')
    monkeypatch.delenv('BEAM_JOBS_REQUIRE_REHEARSAL', raising=False)
    suffix = uuid.uuid4().hex[:6]

    def at(user):
        monkeypatch.setenv('LOGNAME', user)
        monkeypatch.setenv('USER', user)
        monkeypatch.setenv('BEAM_JOBS_HOME', str(tmp_path / f'home-{user}'))
        monkeypatch.setenv('DATASTORE_NAMESPACE', namespace(user))

    def namespace(user):
        """Each machine's own local records: a namespace of the local emulator."""
        return f'{user}{suffix}'
    at.namespace = namespace
    return at


def _cli(capsys, *argv, registry=REGISTRY):
    code = cli.main([*registry, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _dataflow(stub, *more):
    temp = f'gs://{BUCKET}/{uuid.uuid4().hex[:8]}/tmp'
    return ['--runner=DataflowRunner', f'--project={testing.TEST_PROJECT}',
            '--region=europe-west1', f'--temp_location={temp}',
            f'--dataflow_endpoint={stub.endpoint}', '--no_auth', *more]


def _signoff():
    return record_stores.signoff_target()


def test_the_guides_process_across_three_machines(capsys, team, stub, gcs, tmp_path,
                                                  monkeypatch):
    monkeypatch.setenv('BEAM_JOBS_APPROVERS', 'sean')
    with testing.ndb_context(Target(testing.TEST_PROJECT, team.namespace('sean'))):
        # exp-000999's content is broken: the migration cannot read it.
        export = write_export(sample_data.explorations(1000, first=985),
                              str(tmp_path / 'prod-copy'), project='s~prod')

    # The author asks, on her machine.
    team('ana')
    code, out, err = _cli(capsys, 'request', MIGRATION, '--verify', VALIDATION,
                          '--expect', EXPECTED, '--note', 'migrates states to v2',
                          '--link', 'https://github.com/example/jobs/pull/7')
    assert code == 0, err
    request_id = re.match(r'Request ID: (\S+)', out).group(1)

    # The admin sees it, rehearses it: it fails; repairs, rehearses again: it passes.
    team('sean')
    code, out, _ = _cli(capsys, 'requests')
    assert re.search(rf'^{request_id}\s+{MIGRATION}\s+\d+ s\s+ana\s+open\s', out, re.M)
    code, out, err = _cli(capsys, 'rehearse', '--request', request_id, '--export', export)
    assert code == cli.EXIT_ITEMS_FAILED and "1 item(s) failed" in out, out + err
    code, out, _ = _cli(capsys, 'requests')
    assert 'rehearsed → failed' in out
    code, out, _ = _cli(capsys, 'rehearse', REPAIR, '--export', export)
    assert code == 0
    repaired = re.search(r'^After state: (\S+)$', out, re.M).group(1)
    repair_rehearsal = re.match(r'Rehearsal ID: (\S+)', out).group(1)
    code, out, err = _cli(capsys, 'rehearse', '--request', request_id, '--export', repaired)
    assert code == 0, out + err
    rehearsal_id = re.match(r'Rehearsal ID: (\S+)', out).group(1)
    assert f'- Request: `{request_id}`' in out and '- Rehearsed by sean on ' in out

    # Someone not named cannot approve it, on any machine.
    team('ana')
    code, _, err = _cli(capsys, 'approve', rehearsal_id, '--note', 'me too')
    assert code == cli.EXIT_USAGE
    assert 'ana may not approve rehearsals: only the named approvers (sean) may' in err
    code, _, err = _cli(capsys, 'approve', rehearsal_id, '--user', 'sean')
    assert code == cli.EXIT_USAGE and 'not sean: sign off as yourself' in err

    team('sean')
    code, out, _ = _cli(capsys, 'approve', rehearsal_id, '--note', 'validation clean')
    assert code == 0 and 'approved by sean' in out
    code, _, err = _cli(capsys, 'approve', rehearsal_id)
    assert code == cli.EXIT_USAGE and f'sean already approved rehearsal {rehearsal_id}' in err
    code, out, _ = _cli(capsys, 'requests')
    assert 'approved by sean' in out

    # The release machine sees the team's rehearsals. The migration was
    # rehearsed after the repair's writes: the gate waits for the repair.
    team('rel')
    code, out, _ = _cli(capsys, 'rehearsals')
    assert rehearsal_id in out and re.search(rf'{rehearsal_id}\s+passed\s+sean', out)
    code, out, _ = _cli(capsys, 'plan', '--project', testing.TEST_PROJECT)
    assert re.search(rf'^1\s+{REPAIR}\s+unapproved\s', out, re.M), out
    assert re.search(rf'^2\s+{MIGRATION}\s+waits for\s.*\s{REPAIR}\s+run {REPAIR} first',
                     out, re.M), out
    code, _, err = _cli(capsys, 'run', MIGRATION, *_dataflow(stub))
    assert code == cli.EXIT_USAGE
    assert (f'{MIGRATION} may not run in production yet: its rehearsal {rehearsal_id} ran '
            f'after the writes of jobs that have not run there: {REPAIR} (it has no '
            'approved rehearsal of its own, and has not run)') in err
    team('sean')
    assert _cli(capsys, 'approve', repair_rehearsal)[0] == 0
    team('rel')
    code, _, err = _cli(capsys, 'run', MIGRATION, *_dataflow(stub))
    assert code == cli.EXIT_USAGE
    assert f'{REPAIR} (no completed run against {testing.TEST_PROJECT} since its approval' in err
    code, out, err = _cli(capsys, 'run', REPAIR, *_dataflow(stub))
    assert code == 0, err
    repair_run = re.search(r'^Run (\S+)$', out, re.M).group(1)
    stub.set_state(list(stub.jobs)[-1], 'JOB_STATE_DONE')
    # Whoever follows it next (here the release machine) sees it completed.
    shared_runs = runs.RunStore(record_stores.signoff_target())
    assert follow.current(shared_runs, repair_run).status == runs.COMPLETED
    code, out, _ = _cli(capsys, 'plan', '--project', testing.TEST_PROJECT)
    assert re.search(rf'^1\s+{REPAIR}\s+ran \({repair_run}\)', out, re.M), out
    assert re.search(rf'^2\s+{MIGRATION}\s+may run\s', out, re.M), out
    code, out, err = _cli(capsys, 'run', MIGRATION, *_dataflow(stub))
    assert code == 0, err
    assert 'Submitted to Dataflow' in out
    # Other params than the rehearsal's: refused, naming the param.
    code, _, err = _cli(capsys, 'run', MIGRATION, '--param', 'limit=5', *_dataflow(stub))
    assert code == cli.EXIT_USAGE
    assert f'its newest approved rehearsal, {rehearsal_id}, does not cover this run' in err
    assert 'param limit is 5 here, null in the rehearsal' in err
    # A skip is allowed, and recorded.
    code, _, err = _cli(capsys, 'run', MIGRATION, '--skip-rehearsal', '--user', 'rel',
                        '--reason', 'hotfix INC-42', *_dataflow(stub))
    assert code == 0, err
    assert len(stub.jobs) == 3

    # The audit lists every decision, newest first, with who and where.
    code, out, _ = _cli(capsys, 'audit', '--job', MIGRATION)
    decisions = [line.split()[3] for line in out.splitlines()[1:]]
    assert decisions == ['skipped', 'refused', 'approved', 'refused', 'refused']
    assert re.search(rf'approved\s+rel\s+DataflowRunner {testing.TEST_PROJECT}\s+'
                     rf'{rehearsal_id} \(approved by sean\)', out)
    assert 'skipped by rel: hotfix INC-42' in out

    # The approver withdraws the approval: the gate refuses again.
    team('sean')
    code, out, _ = _cli(capsys, 'withdraw', rehearsal_id, '--reason', 'data changed')
    assert code == 0
    team('rel')
    code, _, err = _cli(capsys, 'run', MIGRATION, *_dataflow(stub))
    assert code == cli.EXIT_USAGE and f'{MIGRATION} has no approved rehearsal' in err
    code, out, _ = _cli(capsys, 'rehearsal', rehearsal_id)
    assert '  - withdrawn by sean on ' in out and 'data changed' in out


JOB_PACKAGE = {
    '__init__.py': '',
    'helper.py': 'def shout(text):\n    return text.upper() + "!"\n',
    'jobs.py': textwrap.dedent('''\
        from beam_jobs import jobs
        from teamjobs_{suffix} import helper
        from tests.job_fixtures import NoteModel


        class ShoutJob(jobs.BaseMapReduceOneOffJobManager):
            @classmethod
            def entity_classes_to_map_over(cls):
                return [NoteModel]

            @staticmethod
            def map(item):
                item.text = helper.shout(item.text)
                yield jobs.Put(item)
                yield ('shouted', 1)

            @staticmethod
            def reduce(key, values):
                yield (key, len(values))


        class OtherJob(ShoutJob):
            """Another job in the same file: changing it voids nothing of ShoutJob."""
        '''),
    'registry.py': textwrap.dedent('''\
        from beam_jobs import JobRegistry
        from teamjobs_{suffix} import jobs
        REGISTRY = JobRegistry([jobs.ShoutJob, jobs.OtherJob])
        '''),
}


@pytest.fixture
def shout_package(tmp_path, monkeypatch):
    suffix = uuid.uuid4().hex[:8]
    package = tmp_path / f'teamjobs_{suffix}'
    package.mkdir()
    for name, text in JOB_PACKAGE.items():
        (package / name).write_text(text.replace('{suffix}', suffix))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package, ['--registry', f'teamjobs_{suffix}.registry']
    for module in [m for m in sys.modules if m.startswith(f'teamjobs_{suffix}')]:
        del sys.modules[module]


def test_an_approval_covers_the_modules_the_job_imports(capsys, team, stub, gcs,
                                                        tmp_path, shout_package):
    package, registry = shout_package
    name = package.name
    with testing.ndb_context(Target(testing.TEST_PROJECT, team.namespace('sean'))):
        export = write_export(fx.notes(5), str(tmp_path / 'notes'), project='prod')
    team('sean')   # no approvers named: anyone may approve, and it is recorded
    code, out, err = _cli(capsys, 'rehearse', 'ShoutJob', '--export', export,
                          registry=registry)
    assert code == 0, out + err
    rehearsal_id = re.match(r'Rehearsal ID: (\S+)', out).group(1)
    assert f'`{name}.helper`' in out
    assert _cli(capsys, 'approve', rehearsal_id, registry=registry)[0] == 0
    record = rehearsal_records.RehearsalStore(_signoff()).get(rehearsal_id)
    assert record.approvals[0]['approvers'] is None
    team('rel')
    assert _cli(capsys, 'run', 'ShoutJob', *_dataflow(stub), registry=registry)[0] == 0
    # Another job in the same file changes: the approval stands.
    jobs_file = package / 'jobs.py'
    jobs_file.write_text(jobs_file.read_text().replace(
        'changing it voids nothing of ShoutJob.', 'changed.'))
    assert _cli(capsys, 'run', 'ShoutJob', *_dataflow(stub), registry=registry)[0] == 0
    # A module the job imports changes: refused, naming it.
    (package / 'helper.py').write_text('def shout(text):\n    return text.upper() + "!!"\n')
    code, _, err = _cli(capsys, 'run', 'ShoutJob', *_dataflow(stub), registry=registry)
    assert code == cli.EXIT_USAGE
    assert f'module {name}.helper changed' in err
    assert 'rehearse it (`beam-jobs rehearse ShoutJob --export PATH`' in err
    decisions = audit_lib.AuditStore(_signoff()).newest_first(job_name='ShoutJob')
    assert [d.decision for d in decisions] == ['refused', 'approved', 'approved']


def test_an_old_rehearsal_no_longer_passes(capsys, team, stub, gcs, tmp_path,
                                           shout_package, monkeypatch):
    _, registry = shout_package
    with testing.ndb_context(Target(testing.TEST_PROJECT, team.namespace('sean'))):
        export = write_export(fx.notes(3), str(tmp_path / 'notes'), project='prod')
    team('sean')
    code, out, _ = _cli(capsys, 'rehearse', 'ShoutJob', '--export', export, registry=registry)
    rehearsal_id = re.match(r'Rehearsal ID: (\S+)', out).group(1)
    _cli(capsys, 'approve', rehearsal_id, registry=registry)
    monkeypatch.setenv('BEAM_JOBS_REHEARSAL_MAX_AGE_DAYS', '0.00001')   # 0.864 s
    # A rehearsal on the fast path can end within 0.864 s of its export.
    time.sleep(1)
    code, _, err = _cli(capsys, 'run', 'ShoutJob', *_dataflow(stub), registry=registry)
    assert code == cli.EXIT_USAGE
    assert 'days ago, more than rehearsal_max_age_days = 1e-05' in err


def _token_file(tmp_path, **tokens):
    path = tmp_path / 'users'
    path.write_text(''.join(f'{name}: {hashlib.sha256(token.encode()).hexdigest()}\n'
                            for name, token in tokens.items()))
    return str(path)


def test_the_console_signs_off_as_the_signed_in_user(team, tmp_path, monkeypatch):
    from beam_jobs import console as console_lib
    from starlette.testclient import TestClient
    monkeypatch.setenv('BEAM_JOBS_APPROVERS', 'sean')
    team('sean')
    target = _signoff()
    rehearsals = rehearsal_records.RehearsalStore(target)
    passed = rehearsals.create('TopicCountJob', verdict=rehearsal_records.PASSED)
    requests = request_records.RequestStore(target)
    asked = requests.create('TopicCountJob', requested_by='ana', note='please')
    audit_lib.AuditStore(target).append('TopicCountJob', audit_lib.REFUSED,
                                        user='rel', reason='no approved rehearsal')
    users = console_lib.read_users(_token_file(tmp_path, sean='tok-sean', ana='tok-ana'))
    app = console_lib.create_app(console_helpers.console(Target(
        testing.TEST_PROJECT, team.namespace('sean'))), users=users)
    with TestClient(app, base_url='http://127.0.0.1:8080') as client:
        def as_(token):
            return {'Authorization': f'Bearer {token}'}
        assert client.get('/api/requests').status_code == 401
        # Ana is signed in, but no approver: refused, with the approvers named.
        response = client.post(f'/api/rehearsals/{passed.rehearsal_id}/approve',
                               json={'user': 'sean', 'note': 'x'}, headers=as_('tok-ana'))
        assert response.status_code == 403
        assert 'only the named approvers (sean)' in response.json()['error']
        # Sean approves: the record keeps his signed-in name, whatever the body says.
        response = client.post(f'/api/rehearsals/{passed.rehearsal_id}/approve',
                               json={'user': 'someone else', 'note': 'ok'},
                               headers=as_('tok-sean'))
        assert response.status_code == 200, response.text
        assert [a['user'] for a in response.json()['approvals']] == ['sean']
        page = client.get(f'/rehearsals/{passed.rehearsal_id}', headers=as_('tok-sean')).text
        assert 'Signed in as <strong>sean</strong>' in page and 'Your name' not in page
        # The requests page, the spreadsheet; a rejection with a note.
        listed = client.get('/api/requests', headers=as_('tok-sean')).json()['requests']
        assert [r['state'] for r in listed] == ['open']
        response = client.post(f'/api/requests/{asked.request_id}/reject',
                               json={'note': 'rehearse on the new export'},
                               headers=as_('tok-sean'))
        assert response.json()['state_text'] == 'rejected by sean: rehearse on the new export'
        page = client.get('/requests', headers=as_('tok-ana')).text
        assert asked.request_id in page and 'rejected by sean' in page
        page = client.get('/audit', headers=as_('tok-ana')).text
        assert 'refused' in page and 'no approved rehearsal' in page
        # The login form signs each person in under their own name.
        client.get('/login')
        response = client.post('/login', data={
            'token': 'tok-ana', 'next': '/requests',
            'csrf_token': client.cookies['beam_jobs_csrf']}, follow_redirects=False)
        assert response.status_code == 303
        assert 'Signed in as <strong>ana</strong>' in client.get('/requests').text
