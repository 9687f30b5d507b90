"""Watching a Dataflow run as closely as a local one: counters while it runs,
progress, stages, the cause of a failure, cost and size at the end; polite
polling. Against the local Dataflow stand-in (tests/dataflow_stub.py) playing
scripts of the API's documented answers, through the CLI, the console's API
and its pages."""

import re
import threading
import uuid

import pytest

from beam_jobs import cli, output_format, testing
from beam_jobs import target as target_lib
from beam_jobs.export import write_export
from beam_jobs.io import stored_output
from beam_jobs.lifecycle import follow
from beam_jobs.records import runs
from pipelines import exp_jobs_one_off, sample_data
from tests import console_helpers
from tests.dataflow_stub import (Snapshot, counter, message,
                                 service_metric, stage)
from tests.storage_emulator import BUCKET

REGION = 'europe-west1'
JOB = exp_jobs_one_off.InteractionAuditOneOffJob
READ = 'entities_read.ExplorationModel'
TRACEBACK = (
    'Error message from worker: Traceback (most recent call last):\n'
    '  File "apache_beam/runners/common.py", line 1501, in process\n'
    '  File "/usr/local/lib/python3.11/site-packages/beam_jobs/compile/steps.py", '
    'line 160, in _map_batch\n'
    'beam_jobs.compile.steps.JobItemError: ERROR in map for ExplorationModel/exp-000007: '
    "ValueError: state 'Intro' has no content (at exp_jobs_one_off.py:95) "
    "[while running 'RunJob InteractionAuditOneOffJob/Steps/Map']\n")


@pytest.fixture(autouse=True)
def _settings(monkeypatch):
    monkeypatch.setenv('BEAM_JOBS_REQUIRE_REHEARSAL', 'false')
    monkeypatch.setenv('BEAM_JOBS_FOLLOW_INTERVAL', '0')


@pytest.fixture
def export(datastore_target, tmp_path):
    """12 explorations, so progress has a total to count against."""
    with testing.ndb_context(datastore_target):
        return write_export(sample_data.explorations(12), str(tmp_path / 'e'),
                            project=datastore_target.project)


def _submit(capsys, stub, gcs, export, *more):
    temp = f'gs://{BUCKET}/{uuid.uuid4().hex[:8]}/tmp'
    code = cli.main(['run', JOB.__name__, '--export', export, '--runner=DataflowRunner',
                     f'--project={testing.TEST_PROJECT}', f'--region={REGION}',
                     f'--temp_location={temp}', f'--dataflow_endpoint={stub.endpoint}',
                     '--no_auth', *more])
    out, err = capsys.readouterr()
    return code, out, err


def _running(read, calls, tentative=True):
    return [counter(READ, read, tentative=tentative),
            counter('map_calls', calls, tentative=tentative),
            counter('seen', calls, namespace=JOB.__name__, tentative=tentative),
            counter('RPC successes', 9, namespace='Datastore', tentative=tentative)]


COMPLETING = [
    Snapshot('JOB_STATE_RUNNING', _running(3, 3), stages=[stage('F1', 'running'),
                                                          stage('F2', 'not_started')]),
    Snapshot('JOB_STATE_RUNNING', _running(9, 9), stages=[stage('F1', 'running'),
                                                          stage('F2', 'running')]),
    Snapshot('JOB_STATE_DONE', _running(12, 12, tentative=True) + _running(12, 12, tentative=False)
             + [service_metric('TotalVcpuTime', 7200.0)],
             messages=[message('Starting 1 workers in europe-west1-b...', 'JOB_MESSAGE_BASIC'),
                       message('Autoscaling: Raised the number of workers to 3 based on '
                               'the rate of progress.', 'JOB_MESSAGE_BASIC')],
             stages=[stage('F1', 'succeeded'), stage('F2', 'succeeded')],
             time='2026-01-01T10:12:30Z'),
]
FAILING = [
    Snapshot('JOB_STATE_RUNNING', _running(5, 5), stages=[stage('F1', 'running')]),
    Snapshot('JOB_STATE_FAILED', _running(7, 7, tentative=False),
             messages=[message(TRACEBACK), message(TRACEBACK),
                       message('Workflow failed. Causes: S01:Read+Map failed.'),
                       message('Worker pool stopped.', 'JOB_MESSAGE_BASIC')],
             stages=[stage('F1', 'failed')]),
]


def _store_output(target, run_id, lines):
    """What the job's last step does on the workers."""
    stored = output_format.collapse(lines)
    client = target_lib.client(target)
    client.put_multi([entity.to_client_entity()
                      for entity in stored_output.to_entities(stored, run_id, target)])


def test_a_watched_run_to_completed(capsys, monkeypatch, datastore_target, stub, gcs,
                                    export):
    code, out, err = _submit(capsys, stub, gcs, export)
    assert code == 0, err
    run_id = re.search(r'^Run (\S+)$', out, re.M).group(1)
    store = runs.RunStore(datastore_target)
    record = store.get(run_id)
    assert record.progress['total'] == {'ExplorationModel': 12}
    stub.play(record.dataflow.job_id, COMPLETING)

    # While it runs: attempted counters under a local run's names, progress
    # against the export's count, stages.
    record = follow.current(store, run_id)
    assert record.status == runs.STARTED and record.dataflow.counters_attempted
    assert record.counters[READ] == 3 and record.counters['map_calls'] == 3
    assert record.counters[f'{JOB.__name__}.seen'] == 3
    assert not any('RPC' in name for name in record.counters)
    assert record.progress['read'] == {'ExplorationModel': 3}
    assert record.dataflow.stages == [{'name': 'F1', 'state': 'running'},
                             {'name': 'F2', 'state': 'not started'}]
    # Within the interval, every reader sees that refresh without asking.
    monkeypatch.setenv('BEAM_JOBS_FOLLOW_INTERVAL', '10')
    assert cli.main(['status', run_id]) == 0
    out, _ = capsys.readouterr()
    assert 'progress: ExplorationModel 3 / 12 (25%)' in out
    assert 'stages: F1 running, F2 not started' in out
    assert 'map_calls = 3 (attempted: the job is still running)' in out
    # The console's page shows the same.
    with console_helpers.client(datastore_target) as client:
        shown = client.get(f'/api/runs/{run_id}').json()
        assert shown['progress_view']['read'] == 3 and shown['counters_attempted']
        page = client.get(f'/runs/{run_id}').text
        assert '3 / 12 (25.0%)' in page and 'attempted: the Dataflow job is still running' in page

    # To the end: `status --watch` follows it and exits as `run` would.
    monkeypatch.setenv('BEAM_JOBS_FOLLOW_INTERVAL', '0')
    _store_output(datastore_target, run_id, ["['TextInput', 12]"])
    assert cli.main(['status', run_id, '--watch', '--every', '0']) == 0
    out, err = capsys.readouterr()
    assert re.search(r'status: completed$', out, re.M)
    assert 'usage: 3 worker(s) at most, 2.00 vCPU hours, 22 min 30 s elapsed' in out
    record = store.get(run_id)
    assert not record.dataflow.counters_attempted and record.counters[READ] == 12
    assert record.usage == {'workers': 3, 'vcpu_seconds': 7200.0, 'elapsed_seconds': 1350.0,
                            'cost_usd': pytest.approx(2 * 0.056)}   # vCPU alone reported
    assert (record.output_line_count, record.error_count) == (1, 0)
    with console_helpers.client(datastore_target) as client:
        page = client.get(f'/runs/{run_id}').text
        assert '3 worker(s) at most, 2.00 vCPU hours' in page


def test_a_watched_run_to_failed_says_why(capsys, datastore_target, stub, gcs, export):
    code, out, err = _submit(capsys, stub, gcs, export)
    run_id = re.search(r'^Run (\S+)$', out, re.M).group(1)
    store = runs.RunStore(datastore_target)
    stub.play(store.get(run_id).dataflow.job_id, FAILING)
    assert cli.main(['status', run_id, '--watch', '--every', '0']) == cli.EXIT_FAILED
    out, err = capsys.readouterr()
    record = store.get(run_id)
    assert record.status == runs.FAILED
    assert record.error.startswith(
        "The Dataflow job failed in step 'RunJob InteractionAuditOneOffJob/Steps/Map' "
        'on ExplorationModel/exp-000007: beam_jobs.compile.steps.JobItemError: ERROR in '
        "map for ExplorationModel/exp-000007: ValueError: state 'Intro' has no content")
    assert record.dataflow.console_url in record.error and 'Traceback' not in record.error
    # The first error messages, trimmed; repeats once.
    assert [f['item'] for f in record.dataflow.failure_messages] == ['ExplorationModel/exp-000007', None]
    assert record.dataflow.failure_messages[1]['exception'].startswith('Workflow failed')
    assert f'!!! RUN FAILED: {record.error}' in err
    assert 'cause: beam_jobs.compile.steps.JobItemError' in out
    assert JOB.get_error(run_id) == record.error
    with console_helpers.client(datastore_target) as client:
        shown = client.get(f'/api/runs/{run_id}').json()
        assert shown['failure_texts'][0].endswith(
            "(step 'RunJob InteractionAuditOneOffJob/Steps/Map', item ExplorationModel/exp-000007)")
        page = client.get(f'/runs/{run_id}').text
        assert 'Why the Dataflow job failed' in page and 'Traceback' not in page


def test_run_wait_follows_to_the_end_with_runs_exit_codes(capsys, datastore_target, stub,
                                                          gcs, export):
    def play_when_submitted():
        while not stub.jobs:
            threading.Event().wait(0.05)
        [job_id] = stub.jobs
        stub.play(job_id, COMPLETING)
        store = runs.RunStore(datastore_target)
        [record] = [r for r in store.recent(5) if r.dataflow.job_id == job_id] or [None]
        while record is None:
            threading.Event().wait(0.05)
            [record] = [r for r in store.recent(5) if r.dataflow.job_id == job_id] or [None]
        _store_output(datastore_target, record.run_id,
                      ["['TextInput', 11]", 'ERROR in map for ExplorationModel/x: E: boom'])
    player = threading.Thread(target=play_when_submitted, daemon=True)
    player.start()
    code, out, err = _submit(capsys, stub, gcs, export, '--wait')
    player.join(timeout=30)
    assert code == cli.EXIT_ITEMS_FAILED, err
    assert "['TextInput', 11]" in out and 'Summary: completed:' in out
    assert '!!! 1 ITEM(S) FAILED' in err


def test_following_is_polite(monkeypatch, datastore_target, stub, gcs, export, capsys):
    """One refresh per run every `follow_interval`, whoever asks: ten readers
    at once (a console with ten tabs) make one set of requests."""
    code, out, _ = _submit(capsys, stub, gcs, export)
    run_id = re.search(r'^Run (\S+)$', out, re.M).group(1)
    store = runs.RunStore(datastore_target)
    job_id = store.get(run_id).dataflow.job_id
    stub.play(job_id, COMPLETING)
    monkeypatch.setenv('BEAM_JOBS_FOLLOW_INTERVAL', '10')
    before = len(stub.requests_of('GET'))
    with console_helpers.client(datastore_target) as client:
        readers = [threading.Thread(target=client.get, args=(f'/api/runs/{run_id}',))
                   for _ in range(10)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
    job_gets = [r for r in stub.requests_of('GET')[before:] if r.path.split('?')[0].endswith(job_id)]
    assert len(job_gets) == 1
    assert follow.current(store, run_id).counters[READ] == 3   # still the first snapshot


def test_an_api_error_is_shown_and_the_last_figures_kept(datastore_target, stub, gcs,
                                                         export, capsys):
    code, out, _ = _submit(capsys, stub, gcs, export)
    run_id = re.search(r'^Run (\S+)$', out, re.M).group(1)
    store = runs.RunStore(datastore_target)
    stub.play(store.get(run_id).dataflow.job_id, COMPLETING)
    assert follow.current(store, run_id).counters[READ] == 3
    stub.fail_with = (500, 'backend unavailable')
    record = follow.current(store, run_id)
    assert record.status == runs.STARTED and record.counters[READ] == 3
    assert record.dataflow.follow_error.startswith('Dataflow did not answer (500 backend unavailable)')
    with console_helpers.client(datastore_target) as client:
        assert 'backend unavailable' in client.get(f'/runs/{run_id}').text
    stub.fail_with = None
    record = follow.current(store, run_id)
    assert record.dataflow.follow_error is None and record.counters[READ] == 9


def _spending(vcpu_hours):
    """A running job that reported `vcpu_hours` (and n1-standard-1 memory)."""
    return Snapshot('JOB_STATE_RUNNING', _running(4, 4) + [
        service_metric('TotalVcpuTime', vcpu_hours * 3600),
        service_metric('TotalMemoryUsage', vcpu_hours * 3600 * 3840),
        service_metric('TotalShuffleDataProcessed', 2 * 1024 ** 3)])


def test_a_run_past_its_budget_is_canceled_and_ends_failed_naming_it(
        capsys, monkeypatch, datastore_target, stub, gcs, export):
    code, out, err = _submit(capsys, stub, gcs, export, '--max-cost-usd', '0.5')
    assert code == 0, err
    run_id = re.search(r'^Run (\S+)$', out, re.M).group(1)
    store = runs.RunStore(datastore_target)
    job_id = store.get(run_id).dataflow.job_id
    stub.play(job_id, [_spending(1), _spending(10)])

    # Under budget: it goes on, and says what is left.
    assert cli.main(['status', run_id]) == 0
    shown = capsys.readouterr().out
    record = store.get(run_id)
    first = 0.056 + 3.75 * 0.003557 + 2 * 0.011     # europe-west1 list rates
    assert record.status == runs.STARTED
    assert record.usage['cost_usd'] == pytest.approx(first, abs=1e-6)
    assert f'budget left: ${0.5 - first:.2f} of $0.50 left' in shown
    monkeypatch.setenv('BEAM_JOBS_FOLLOW_INTERVAL', '60')   # the page shows that look
    with console_helpers.client(datastore_target) as client:
        assert client.get(f'/api/runs/{run_id}').json()['budget_left_text'].startswith(
            f'${0.5 - first:.2f} of $0.50 left')
    monkeypatch.setenv('BEAM_JOBS_FOLLOW_INTERVAL', '0')
    assert not stub.requests_of('PUT')

    # Past it: the watch cancels the job and ends the record failed, saying why.
    assert cli.main(['status', run_id, '--watch', '--every', '0']) == cli.EXIT_FAILED
    out, err = capsys.readouterr()
    [cancel] = stub.requests_of('PUT')
    assert cancel.path.split('?')[0].endswith(f'/jobs/{job_id}')
    assert stub.jobs[job_id]['currentState'] == 'JOB_STATE_CANCELLED'
    record = store.get(run_id)
    assert record.status == runs.FAILED
    assert record.error.startswith(
        'Canceled by beam-jobs: the cost of the resources the Dataflow job reported '
        f'(${10 * first - 9 * 2 * 0.011:.2f} at list rates) passed its budget, '
        'max_cost_usd = $0.50.')
    assert f'!!! RUN FAILED: {record.error}' in err
