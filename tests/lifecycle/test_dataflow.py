"""Submitting to Dataflow, following and cancelling, against local stand-ins.

`tests/dataflow_stub.py` plays the Dataflow REST API and gcp-storage-emulator
plays Cloud Storage; Beam's own DataflowRunner stages to the one and submits
to the other exactly as it would in production. Run records live in the test
emulator (DATASTORE_EMULATOR_HOST is set), under the Dataflow project.
"""

import io
import re
import tarfile
import time
import uuid

import apache_beam as beam
import pytest
from apache_beam.internal import pickler
from apache_beam.portability.api import beam_runner_api_pb2
from google.cloud.dataflow_v1beta3 import FlexResourceSchedulingGoal

from beam_jobs import cli, jobs, options, testing
from beam_jobs.lifecycle import dataflow, dataflow_settings
from beam_jobs.lifecycle import follow, launcher
from beam_jobs.compile import store_output
from beam_jobs.records import runs
from beam_jobs.export import write_export
from beam_jobs.lifecycle import code_version
from beam_jobs.records.rehearsals import RehearsalStore
from pipelines import exp_jobs_one_off, sample_data
from tests import job_fixtures as fx
from tests.storage_emulator import BUCKET

REGION = 'europe-west1'
JOB = exp_jobs_one_off.InteractionAuditOneOffJob


@pytest.fixture(autouse=True)
def _gate_off(monkeypatch):
    """These tests are about submission; the production gate has its own.
    Each follow asks the service (the politeness test sets the interval)."""
    monkeypatch.setenv('BEAM_JOBS_REQUIRE_REHEARSAL', 'false')
    monkeypatch.setenv('BEAM_JOBS_FOLLOW_INTERVAL', '0')


@pytest.fixture
def gate_on(monkeypatch):
    monkeypatch.delenv('BEAM_JOBS_REQUIRE_REHEARSAL')


def _flags(stub, temp_location, *more):
    return ['--runner=DataflowRunner', f'--project={testing.TEST_PROJECT}',
            f'--region={REGION}', f'--temp_location={temp_location}',
            f'--dataflow_endpoint={stub.endpoint}', '--no_auth', *more]


def _store(target):
    return runs.RunStore(target)


def _staged(gcs, temp_location):
    prefix = temp_location.split('/', 3)[3]
    return {blob.name.rsplit('/', 1)[1]: blob
            for blob in gcs.list_blobs(BUCKET, prefix=prefix)}


def _transforms(pipeline_pb: bytes) -> dict:
    proto = beam_runner_api_pb2.Pipeline.FromString(pipeline_pb)
    return {t.unique_name: t for t in proto.components.transforms.values()}


def test_run_submits_and_follows_the_job(capsys, datastore_target, stub, gcs,
                                         temp_location):
    code = cli.main(['run', JOB.__name__, '--shard-count', '5', *_flags(
        stub, temp_location, '--machine_type=n1-standard-2',
        '--max_num_workers=5',
        '--service_account_email=runner@beam-jobs-test.iam.gserviceaccount.com')])
    out, err = capsys.readouterr()
    assert code == 0, err
    run_id = re.search(r'^Run (\S+)$', out, re.M).group(1)
    record = _store(datastore_target).get(run_id)
    assert record.status == runs.STARTED
    assert record.runner == 'DataflowRunner'
    assert record.dataflow.job_id in stub.jobs
    assert record.dataflow.console_url == (
        f'https://console.cloud.google.com/dataflow/jobs/{REGION}/'
        f'{record.dataflow.job_id}?project={testing.TEST_PROJECT}')
    assert record.dataflow.job_id in out and record.dataflow.console_url in out

    # What reached the service: one create, named and labelled for the run.
    [create] = stub.requests_of('POST')
    assert f'/projects/{testing.TEST_PROJECT}/locations/{REGION}/jobs' in create.path
    assert create.body['name'] == dataflow_settings.job_name_for(run_id)
    assert create.body['labels'] == {
        'job': 'interactionauditoneoffjob', 'beam-jobs-job': 'interactionauditoneoffjob',
        'beam-jobs-run': dataflow_settings.job_name_for(run_id),
        'beam-jobs-approved-by': 'none'}   # the gate is off here
    environment = create.body['environment']
    [pool] = environment['workerPools']
    assert pool['machineType'] == 'n1-standard-2'
    assert pool['autoscalingSettings']['maxNumWorkers'] == 5
    assert not environment.get('flexResourceSchedulingGoal')   # FlexRS only when asked
    assert environment['serviceAccountEmail'].startswith('runner@')
    assert {p['name'] for p in pool['packages']} >= {'workflow.tar.gz'}

    # What was staged: the pipeline, and the project built from setup.py.
    staged = _staged(gcs, temp_location)
    assert {'pipeline.pb', 'workflow.tar.gz'} <= set(staged)
    with tarfile.open(fileobj=io.BytesIO(
            staged['workflow.tar.gz'].download_as_bytes())) as sdist:
        names = {name.split('/', 1)[1] for name in sdist.getnames() if '/' in name}
    assert {'setup.py', 'beam_jobs/lifecycle/dataflow.py', 'beam_jobs/compile/transforms.py',
            'pipelines/exp_jobs_one_off.py'} <= names
    transforms = _transforms(staged['pipeline.pb'].download_as_bytes())
    prefix = f'RunJob {JOB.__name__}/'
    for step in ('Read Datastore', 'Steps/Map', 'Steps/Shuffle',
                 'Steps/Reduce'):
        assert prefix + step in transforms
    assert 'Store output/Write output' in ' '.join(transforms)
    split = transforms[prefix + 'Read Datastore/SplitQuery']
    payload = beam_runner_api_pb2.ParDoPayload.FromString(split.spec.payload)
    assert pickler.loads(payload.do_fn.payload)[0]._num_splits == 5  # pylint: disable=protected-access

    # Following it: each follow asks the service while the job runs; the
    # store alone never does.
    stub.set_state(record.dataflow.job_id, 'JOB_STATE_RUNNING')
    assert _store(datastore_target).get(run_id).status == runs.STARTED
    assert not stub.requests_of('GET')
    assert follow.current(_store(datastore_target), run_id).status == runs.STARTED
    assert stub.requests_of('GET')

    # The workers' last step stores the output; play it here, then finish.
    with testing.local_test_pipeline() as pipeline:
        _ = (pipeline
             | beam.Create([((1, 'k', 0), 'a'), ((1, 'k', 1), 'a'),
                            ((0, 'e', 0), 'ERROR in map for x: boom')])
             | store_output.StoreOutput(run_id, datastore_target))
    stub.set_state(record.dataflow.job_id, 'JOB_STATE_DONE')
    record = follow.current(_store(datastore_target), run_id)
    assert record.status == runs.COMPLETED
    assert (record.output_line_count, record.error_count) == (3, 1)
    assert cli.main(['output', run_id]) == 0
    assert '(2x) a' in capsys.readouterr().out


def test_enqueue_with_configured_dataflow_then_cancel(
        capsys, monkeypatch, datastore_target, stub, gcs):
    folder = uuid.uuid4().hex[:8]
    for name, value in {
            'RUNNER': 'DataflowRunner', 'PROJECT': testing.TEST_PROJECT,
            'REGION': REGION, 'BUCKET': f'{BUCKET}/{folder}',
            'MAX_NUM_WORKERS': '3',
            'DATAFLOW_ARGS': f'--dataflow_endpoint={stub.endpoint} --no_auth',
    }.items():
        monkeypatch.setenv(f'BEAM_JOBS_{name}', value)
    run_id = JOB.create_new()
    JOB.enqueue(run_id)   # the job's own override asks for 64 shards
    record = JOB.get_record(run_id)
    assert record.status == runs.STARTED and record.shard_count == 64
    environment = stub.requests_of('POST')[0].body['environment']
    assert f'{BUCKET}/{folder}/tmp' in environment['tempStoragePrefix']
    assert environment['workerPools'][0]['autoscalingSettings'] == {
        'maxNumWorkers': 3}

    assert cli.main(['cancel', run_id, '--user', 'ops']) == 0
    [update] = stub.requests_of('PUT')
    assert update.path.split('?')[0].endswith(f'/jobs/{record.dataflow.job_id}')
    assert stub.jobs[record.dataflow.job_id]['currentState'] == 'JOB_STATE_CANCELLED'
    record = JOB.get_record(run_id)
    assert (record.status, record.canceled_by) == (runs.CANCELED, 'ops')
    assert JOB.get_status_code(run_id) == jobs.STATUS_CODE_CANCELED
    assert 'canceled' in capsys.readouterr().out


@pytest.mark.parametrize('flags, message', [
    (['--project='], '--project'),
    (['--temp_location=/tmp/staging'], 'gs://BUCKET/tmp'),
])
def test_bad_options_are_refused_before_submitting(
        datastore_target, stub, temp_location, flags, message):
    with pytest.raises(dataflow.DataflowError, match=message):
        launcher.run_job(JOB, pipeline_args=_flags(stub, temp_location, *flags),
                         target=datastore_target)
    assert stub.requests == []
    assert _store(datastore_target).recent() == []


@pytest.fixture
def no_credentials(tmp_path, monkeypatch):
    """A machine where nobody has logged in to Google Cloud."""
    monkeypatch.delenv('GOOGLE_APPLICATION_CREDENTIALS', raising=False)
    monkeypatch.setenv('CLOUDSDK_CONFIG', str(tmp_path / 'gcloud'))
    monkeypatch.setenv('NO_GCE_CHECK', 'True')   # no metadata server here


def test_a_run_without_credentials_is_refused_in_one_sentence(
        capsys, datastore_target, no_credentials):
    code = cli.main(['run', JOB.__name__, '--runner=DataflowRunner', '--project', 'p',
                     '--region', 'us-central1', '--temp_location', 'gs://b/tmp'])
    out, err = capsys.readouterr()
    assert code == cli.EXIT_USAGE and out == ''
    assert err.count('\n') == 1 and 'Traceback' not in err
    assert 'gcloud auth application-default login' in err
    assert 'GOOGLE_APPLICATION_CREDENTIALS' in err
    assert _store(datastore_target).recent() == []


def test_an_endpoint_error_fails_the_run(datastore_target, stub, temp_location):
    stub.fail_with = (403, 'The caller does not have permission')
    record = launcher.run_job(JOB, pipeline_args=_flags(stub, temp_location),
                              target=datastore_target)
    assert record.status == runs.FAILED
    assert 'refused the job: 403 The caller does not have permission' in record.error
    assert record.dataflow.job_id is None


def _started_on_stub(store, stub, state, job=JOB):
    """A run record as a submission leaves it, for a job the stub holds."""
    run_id = store.create(job.__name__).run_id
    store.transition(run_id, runs.QUEUED, runner='DataflowRunner')
    store.transition(run_id, runs.STARTED)
    job_id = f'job-{uuid.uuid4().hex[:6]}'
    stub.jobs[job_id] = {'id': job_id, 'currentState': state}
    return store.update(run_id, dataflow_job_id=job_id, dataflow_region=REGION,
                        dataflow_project=testing.TEST_PROJECT,
                        dataflow_endpoint=stub.endpoint,
                        console_url=f'https://console/{job_id}')


@pytest.mark.parametrize('state, status', [
    ('JOB_STATE_QUEUED', runs.STARTED),
    ('JOB_STATE_CANCELLING', runs.STARTED),
    ('JOB_STATE_FAILED', runs.FAILED),
    ('JOB_STATE_CANCELLED', runs.CANCELED),
    ('JOB_STATE_DRAINED', runs.CANCELED),
])
def test_dataflow_states_map_onto_run_statuses(datastore_target, stub, state,
                                               status):
    store = _store(datastore_target)
    run_id = _started_on_stub(store, stub, state).run_id
    assert store.get(run_id).status == runs.STARTED   # the store only stores
    record = follow.current(store, run_id)
    assert record.status == status
    if status == runs.FAILED:
        assert 'https://console/' in record.error


def test_a_run_over_an_export_on_cloud_storage_reads_it_on_the_workers(
        capsys, datastore_target, stub, gcs, temp_location):
    dest = f'gs://{BUCKET}/exports/{uuid.uuid4().hex[:8]}'
    with testing.ndb_context(datastore_target):
        write_export(sample_data.explorations(12), dest, project='s~prod-app',
                     entities_per_file=5)
    code = cli.main(['run', JOB.__name__, '--export', dest,
                     *_flags(stub, temp_location)])
    out, err = capsys.readouterr()
    assert code == 0, err
    run_id = re.search(r'^Run (\S+)$', out, re.M).group(1)
    record = _store(datastore_target).get(run_id)
    assert record.source['type'] == 'export'
    assert record.source['path'].startswith(dest + '/')
    assert record.source['entities'] == {'ExplorationModel': 12}
    transforms = _transforms(_staged(gcs, temp_location)['pipeline.pb'].download_as_bytes())
    prefix = f'RunJob {JOB.__name__}/Read export/'
    reads = [name for name in transforms if name.startswith(prefix)]
    assert reads, sorted(transforms)
    assert not any('ReadFromDatastore' in name for name in transforms)
    # The source the workers unpickle reads the files on Cloud Storage.
    [read] = [transforms[name] for name in reads
              if transforms[name].spec.urn == 'beam:transform:read:v1']
    source = pickler.loads(beam_runner_api_pb2.ReadPayload.FromString(
        read.spec.payload).source.payload)
    assert source._pattern.get().startswith(dest + '/')  # pylint: disable=protected-access
    assert source._pattern.get().endswith('/kind_ExplorationModel/output-*')  # pylint: disable=protected-access


def test_completion_hook_runs_once_when_first_seen_finished(datastore_target, stub):
    fx.HOOK_CALLS.clear()
    store = _store(datastore_target)
    record = _started_on_stub(store, stub, 'JOB_STATE_RUNNING', job=fx.HookedJob)
    assert fx.HookedJob.get_status_code(record.run_id) == runs.STARTED
    stub.jobs[record.dataflow.job_id]['currentState'] = 'JOB_STATE_DONE'
    for _ in range(3):
        assert fx.HookedJob.get_status_code(record.run_id) == runs.COMPLETED
    assert fx.HOOK_CALLS == [('post_completed', record.run_id)]


def test_refresh_keeps_the_record_when_the_service_errs(datastore_target, stub):
    store = _store(datastore_target)
    run_id = _started_on_stub(store, stub, 'JOB_STATE_RUNNING').run_id
    stub.fail_with = (403, 'denied')
    assert store.get(run_id).status == runs.STARTED
    with pytest.raises(dataflow.DataflowError, match='cancel it in the console'):
        launcher.cancel_run(store, run_id)
    assert store.get(run_id).status == runs.STARTED


def test_job_names_are_valid_for_dataflow():
    pattern = re.compile(r'[a-z]([-a-z0-9]*[a-z0-9])?')
    for run_id in ('InteractionAuditOneOffJob-1712345678901-012345',
                   'X' * 200 + '-1712345678901-000001', '9Job_x-1-2'):
        name = dataflow_settings.job_name_for(run_id)
        assert pattern.fullmatch(name) and len(name) <= 63, name
    assert dataflow_settings.job_name_for('A' * 200 + '-1712345678901-000001').endswith(
        '-1712345678901-000001')


def test_configured_settings_fill_in_and_flags_win(monkeypatch):
    monkeypatch.setenv('BEAM_JOBS_REGION', 'us-east1')
    monkeypatch.setenv('BEAM_JOBS_BUCKET', 'gs://prod-bucket/')
    monkeypatch.setenv('BEAM_JOBS_MACHINE_TYPE', 'n2-standard-4')
    chosen = options.pipeline_options(
        ['--runner=DataflowRunner', '--region=europe-west4',
         '--worker_machine_type=n1-highmem-2']).get_all_options()
    assert chosen['region'] == 'europe-west4'
    assert chosen['machine_type'] == 'n1-highmem-2'
    assert chosen['temp_location'] == 'gs://prod-bucket/tmp'
    assert chosen['setup_file'].endswith('/setup.py')
    # Local runs take none of it.
    assert options.pipeline_options([]).get_all_options()['region'] is None


def _run_on_stub(capsys, stub, temp_location, *more):
    code = cli.main(['run', JOB.__name__, *_flags(stub, temp_location), *more])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_gate_refuses_an_unrehearsed_job(capsys, datastore_target, stub, gcs,
                                              temp_location, gate_on):
    code, out, err = _run_on_stub(capsys, stub, temp_location)
    assert code == cli.EXIT_USAGE and out == ''
    assert (f'{JOB.__name__} has no approved rehearsal, so it may not run in production'
            in err
            and f'beam-jobs rehearse {JOB.__name__} --export PATH' in err
            and '--skip-rehearsal --user NAME --reason TEXT' in err), err
    assert stub.requests == [] and _store(datastore_target).recent() == []
    # Runs that cannot change data pass: a dry run.
    assert _run_on_stub(capsys, stub, temp_location, '--dry-run')[0] == 0


def test_the_gate_lets_an_approved_rehearsal_through(capsys, datastore_target, stub,
                                                     gcs, temp_location, gate_on):
    rehearsals = RehearsalStore(datastore_target)
    # What a rehearsal of this job, with no params, over a fresh export records.
    rehearsed = {'code_version': code_version.of(JOB, {}),
                 'export': {'timestamp': time.strftime('%Y-%m-%dT%H:%M:%S_000', time.gmtime())}}
    failed = rehearsals.create(JOB.__name__, verdict='failed', **rehearsed)
    assert _run_on_stub(capsys, stub, temp_location)[0] == cli.EXIT_USAGE
    passed = rehearsals.create(JOB.__name__, verdict='passed', **rehearsed)
    assert _run_on_stub(capsys, stub, temp_location)[0] == cli.EXIT_USAGE  # not approved
    rehearsals.approve(passed.rehearsal_id, 'sean', 'looks right')
    code, out, err = _run_on_stub(capsys, stub, temp_location)
    assert code == 0, err
    record = _store(datastore_target).get(re.search(r'^Run (\S+)$', out, re.M).group(1))
    assert record.gate == {'gate': 'approved', 'rehearsal_id': passed.rehearsal_id,
                           'approved_by': ['sean']}
    assert failed.rehearsal_id != passed.rehearsal_id


def test_guardrails_on_by_default_reach_the_service_and_the_summary(
        capsys, datastore_target, stub, gcs, temp_location, gate_on):
    rehearsals = RehearsalStore(datastore_target)
    rehearsed = {'code_version': code_version.of(JOB, {}),
                 'export': {'timestamp': time.strftime('%Y-%m-%dT%H:%M:%S_000', time.gmtime())}}
    passed = rehearsals.create(JOB.__name__, verdict='passed', **rehearsed)
    rehearsals.approve(passed.rehearsal_id, 'Sean O.', 'looks right')
    code, out, err = _run_on_stub(capsys, stub, temp_location, '--flexrs',
                                  '--max-cost-usd', '2.5')
    assert code == 0, err
    run_id = re.search(r'^Run (\S+)$', out, re.M).group(1)
    [create] = stub.requests_of('POST')
    environment = create.body['environment']
    # No --max_num_workers given: the setting's default caps it.
    assert environment['workerPools'][0]['autoscalingSettings']['maxNumWorkers'] == 20
    # REST carries the enum as its number: Beam's --flexrs_goal=COST_OPTIMIZED.
    assert FlexResourceSchedulingGoal(environment['flexResourceSchedulingGoal']).name == \
        'FLEXRS_COST_OPTIMIZED'
    labels = create.body['labels']
    assert labels['beam-jobs-approved-by'] == 'sean-o-'
    assert labels['beam-jobs-run'] == dataflow_settings.job_name_for(run_id)
    assert all(re.fullmatch(r'[a-z0-9_-]{0,63}', value) for value in labels.values())
    # Said before it was submitted: the estimate (no measurement: a warning,
    # no figure) and the guardrails; and kept on the record.
    head = out.split('Submitted to Dataflow')[0]
    assert 'Estimate for InteractionAuditOneOffJob: no figure' in head
    assert 'WARNING: No rehearsal or run of InteractionAuditOneOffJob recorded its CPU' in head
    assert ('Guardrails: at most 20 workers (max_num_workers); canceled once its reported '
            'resources cost more than $2.50 (max_cost_usd); FlexRS (COST_OPTIMIZED): '
            'Dataflow may start it up to hours later') in head
    record = _store(datastore_target).get(run_id)
    assert record.dataflow.budget['max_cost_usd'] == 2.5 and record.dataflow.budget['flexrs']
    assert record.dataflow.budget['rates']['vcpu_hour'] == 0.056
    assert record.dataflow.estimate['workers'] == 20 and record.dataflow.estimate['vcpu_hours'] is None


@pytest.mark.parametrize('flags, message', [
    (['--max-cost-usd', '0'], 'max_cost_usd must be a positive number'),
    (['--max-cost-usd', 'lots'], 'max_cost_usd must be a positive number'),
    (['--max_num_workers=0'], 'max_num_workers must be a positive number'),
])
def test_a_guardrail_that_caps_nothing_is_refused(capsys, datastore_target, stub,
                                                  temp_location, flags, message):
    code, out, err = _run_on_stub(capsys, stub, temp_location, *flags)
    assert code == cli.EXIT_USAGE and out == '' and err.count('\n') == 1
    assert message in err
    assert stub.requests == [] and _store(datastore_target).recent() == []


def test_the_gate_override_is_recorded_and_a_team_may_turn_it_off(
        capsys, datastore_target, stub, gcs, temp_location, gate_on, monkeypatch):
    code, _, err = _run_on_stub(capsys, stub, temp_location, '--skip-rehearsal')
    assert code == cli.EXIT_USAGE and '--skip-rehearsal needs --user NAME' in err
    code, out, err = _run_on_stub(capsys, stub, temp_location, '--skip-rehearsal',
                                  '--user', 'sean', '--reason', 'hotfix, data checked')
    assert code == 0, err
    record = _store(datastore_target).get(re.search(r'^Run (\S+)$', out, re.M).group(1))
    assert record.gate == {'gate': 'skipped', 'skipped_by': 'sean',
                           'reason': 'hotfix, data checked'}
    monkeypatch.setenv('BEAM_JOBS_REQUIRE_REHEARSAL', 'false')   # as in pyproject.toml
    code, out, err = _run_on_stub(capsys, stub, temp_location)
    assert code == 0, err
    record = _store(datastore_target).get(re.search(r'^Run (\S+)$', out, re.M).group(1))
    assert record.gate == {'gate': 'off (require_rehearsal = false)'}


def test_a_migration_on_dataflow_keeps_before_images_ahead_of_its_writes(
        capsys, datastore_target, stub, gcs, temp_location):
    migration = exp_jobs_one_off.ExplorationContentMigrationOneOffJob
    code = cli.main(['run', migration.__name__, *_flags(stub, temp_location)])
    out, err = capsys.readouterr()
    assert code == 0, err
    run_id = re.search(r'^Run (\S+)$', out, re.M).group(1)
    record = _store(datastore_target).get(run_id)
    assert record.backup == {'location': f'gs://{BUCKET}/beam-jobs/backups/{run_id}',
                             'state': 'keeping'}

    proto = beam_runner_api_pb2.Pipeline.FromString(
        _staged(gcs, temp_location)['pipeline.pb'].download_as_bytes())
    transforms = {t.unique_name: t for t in proto.components.transforms.values()}
    prefix = f'RunJob {migration.__name__}/Write/'
    keep = transforms[prefix + 'Keep before-images']
    apply = transforms[prefix + 'Apply writes']
    # The writes reach the sinks only through the step that stores their
    # before-images: the sinks' input is that step's output.
    assert set(apply.inputs.values()) == set(keep.outputs.values())
    assert any(name.startswith(prefix + 'Apply writes/') for name in transforms)
    assert f'RunJob {migration.__name__}/Failed keys/Keep failed keys' in transforms
