"""A rehearsal at any size: over an export and into an after state on Cloud
Storage, here or on Dataflow (the local stand-in), followed like a run,
taken on by whoever reads it next, canceled in the middle; and the after
state's writer, which keeps only the bundles a runner committed."""

import json
import os
import re
import uuid

import pytest
from apache_beam.internal import pickler
from apache_beam.portability.api import beam_runner_api_pb2

from beam_jobs import cli, entities as entities_lib, testing
from beam_jobs.export import ReadExport, after_state, encode, write_export
from beam_jobs.lifecycle import record_stores
from beam_jobs.records import rehearsals as rehearsal_records
from beam_jobs.records import runs
from pipelines import sample_data
from tests import export_helpers
from tests import job_fixtures as fx
from tests.dataflow_stub import Snapshot, message
from tests.storage_emulator import BUCKET

MIGRATION = 'ExplorationContentMigrationOneOffJob'
VALIDATION = 'ExplorationStatesSchemaValidationOneOffJob'
EXPECTED = os.path.join(os.path.dirname(__file__), '..', '..', 'pipelines', 'expected',
                        'exploration_content_migration.txt')
REGISTRY = ['--registry', 'tests.rehearsal_registry']
RUNNING, DONE = Snapshot('JOB_STATE_RUNNING'), Snapshot('JOB_STATE_DONE')


@pytest.fixture
def stub(stub, monkeypatch):
    monkeypatch.setenv('BEAM_JOBS_FOLLOW_INTERVAL', '0')   # every look asks the stand-in
    return stub


@pytest.fixture
def gcs_export(datastore_target, gcs):
    """60 explorations, as an export in Cloud Storage."""
    with testing.ndb_context(datastore_target):
        return write_export(sample_data.explorations(60),
                            f'gs://{BUCKET}/exports/{uuid.uuid4().hex[:8]}',
                            project=datastore_target.project, entities_per_file=25)


def _cli(capsys, *argv):
    code = cli.main([*REGISTRY, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _dataflow(stub, temp_location):
    return ['--runner=DataflowRunner', f'--project={testing.TEST_PROJECT}',
            '--region=europe-west1', f'--temp_location={temp_location}',
            f'--dataflow_endpoint={stub.endpoint}', '--no_auth']


def _rehearsal(target, out):
    rehearsal_id = re.match(r'Rehearsal ID: (\S+)', out).group(1)
    return rehearsal_records.RehearsalStore(target).get(rehearsal_id)


def _blobs(gcs, path):
    bucket, _, prefix = path.removeprefix('gs://').partition('/')
    return sorted(blob.name.removeprefix(prefix + '/')
                  for blob in gcs.list_blobs(bucket, prefix=prefix + '/'))


def test_a_local_rehearsal_over_cloud_storage_passes_and_its_after_state_reads_back(
        capsys, datastore_target, gcs, gcs_export):
    after = f'gs://{BUCKET}/rehearsals/{uuid.uuid4().hex[:8]}/after'
    code, out, err = _cli(capsys, 'rehearse', MIGRATION, '--export', gcs_export,
                          '--after', after, '--verify', VALIDATION, '--expect', EXPECTED)
    assert code == 0, out + err
    record = _rehearsal(datastore_target, out)
    assert record.verdict == 'passed' and record.after_state == after
    assert record.runner is None and not record.is_running
    manifest = json.loads(gcs.bucket(BUCKET).blob(
        after.removeprefix(f'gs://{BUCKET}/') + '/after_state.json').download_as_bytes())
    assert manifest['files']['puts'] and all(
        f'puts/{name}' in _blobs(gcs, after) for name in manifest['files']['puts'])
    # Any machine reads the after state back: the validation over it passes.
    code, out, err = _cli(capsys, 'run', VALIDATION, '--export', after)
    assert code == 0, err
    assert re.search(r"^\['VALID', \d+\]$", out, re.M) and 'ERROR' not in out, out


def test_a_local_rehearsal_over_cloud_storage_fails_naming_the_items(
        capsys, datastore_target, gcs, gcs_export):
    after = f'gs://{BUCKET}/rehearsals/{uuid.uuid4().hex[:8]}/after'
    code, out, err = _cli(capsys, 'rehearse', 'BrokenMigrationOneOffJob', '--export',
                          gcs_export, '--after', after)
    assert code == cli.EXIT_ITEMS_FAILED, out + err
    record = _rehearsal(datastore_target, out)
    assert record.verdict == 'failed'
    assert 'exp-000007' in [item['key'] for item in record.failed_items]


def _staged_graphs(gcs, temp_location) -> list:
    """Each submitted job's pipeline, oldest first: {transform name: transform}."""
    bucket, _, prefix = temp_location.removeprefix('gs://').partition('/')
    staged = sorted((blob for blob in gcs.list_blobs(bucket, prefix=prefix)
                     if blob.name.endswith('/pipeline.pb')), key=lambda blob: blob.time_created)
    graphs = []
    for blob in staged:
        proto = beam_runner_api_pb2.Pipeline.FromString(blob.download_as_bytes())
        graphs.append({t.unique_name: t for t in proto.components.transforms.values()})
    return graphs


def _pardo_fn(transform):
    payload = beam_runner_api_pb2.ParDoPayload.FromString(transform.spec.payload)
    return pickler.loads(payload.do_fn.payload)[0]


def _gets_of(stub, job_id, before):
    """GETs of the job itself among the first `before` requests."""
    return [r for r in stub.requests[:before]
            if r.method == 'GET' and r.path.split('?')[0].endswith(f'/jobs/{job_id}')]


def test_a_rehearsal_on_dataflow_runs_the_job_then_the_verify_job_there(
        capsys, datastore_target, stub, gcs, gcs_export, temp_location):
    stub.play_next([RUNNING, RUNNING, DONE])    # the job
    stub.play_next([RUNNING, DONE])             # then the verify job
    code, out, err = _cli(capsys, 'rehearse', MIGRATION, '--export', gcs_export,
                          '--verify', VALIDATION, *_dataflow(stub, temp_location))
    assert code == 0, out + err
    record = _rehearsal(datastore_target, out)
    assert record.verdict == 'passed', record.reasons
    assert record.runner == 'DataflowRunner'
    # Before its job was submitted: the estimate (nothing measured yet) and
    # the guardrails, after the Rehearsal ID line scripts read first.
    said = out.split(f'{MIGRATION}: submitted to Dataflow')[0]
    assert f'Estimate for {MIGRATION}: no figure' in said
    assert 'Guardrails: at most 20 workers (max_num_workers)' in said
    bucket = temp_location.split('/')[2]
    assert record.after_state == f'gs://{bucket}/rehearsals/{record.rehearsal_id}/after'
    assert 'after_state.json' in _blobs(gcs, record.after_state)

    # The verify job was submitted only once the job had ended well: the
    # job was looked at until the stand-in said DONE (its third look) first.
    posts = [i for i, r in enumerate(stub.requests) if r.method == 'POST']
    assert len(posts) == 2
    job_id, verify_id = sorted(stub.jobs)
    assert len(_gets_of(stub, job_id, posts[1])) >= 3
    store = runs.RunStore(datastore_target)
    job_run, verify_run = store.get(record.run_id), store.get(record.verify[0]['run_id'])
    assert (job_run.dataflow.job_id, verify_run.dataflow.job_id) == (job_id, verify_id)
    assert job_run.status == verify_run.status == runs.COMPLETED
    assert verify_run.source['path'] == record.after_state
    assert verify_run.source['after_state_of'].startswith(gcs_export.rsplit('/', 1)[0])

    # What the workers were given: the job reads the export's files and
    # writes the after state under its prefix; the verify job reads the
    # after state (its export's files, and the puts).
    job_graph, verify_graph = _staged_graphs(gcs, temp_location)
    assert any(name.startswith(f'RunJob {MIGRATION}/Read export/') for name in job_graph)
    [writer] = [t for name, t in job_graph.items()
                if name.endswith('Write puts/WriteImpl/WriteBundles')]
    assert _pardo_fn(writer).sink.file_path_prefix.get() == record.after_state + '/puts/part'
    assert any(name.startswith(f"RunJob {VALIDATION}/Read after state/") for name in verify_graph)
    assert not any('Write puts' in name for name in verify_graph)

    code, out, _ = _cli(capsys, 'rehearsal', record.rehearsal_id)
    assert '- Runs on: DataflowRunner' in out and 'PASSED' in out


def test_a_failed_job_on_dataflow_fails_the_rehearsal_and_no_verify_job_runs(
        capsys, datastore_target, stub, gcs, gcs_export, temp_location):
    stub.play_next([RUNNING, Snapshot('JOB_STATE_FAILED', messages=[message(
        'Workflow failed. Causes: S01:Read export failed.')])])
    code, out, err = _cli(capsys, 'rehearse', MIGRATION, '--export', gcs_export,
                          '--verify', VALIDATION, *_dataflow(stub, temp_location))
    assert code == cli.EXIT_ITEMS_FAILED, out + err
    record = _rehearsal(datastore_target, out)
    assert record.verdict == 'failed' and record.after_state is None
    assert record.reasons[0].startswith("The job's run failed:")
    assert 'Read export failed' in record.reasons[0]
    assert record.verify[0]['reason'] == (f'Verify job {VALIDATION} did not run: there '
                                          'is no after state.')
    assert len(stub.requests_of('POST')) == 1


def test_a_rehearsal_on_dataflow_goes_on_without_the_machine_that_started_it(
        capsys, datastore_target, stub, gcs, gcs_export, temp_location):
    stub.play_next([RUNNING, RUNNING, DONE])
    stub.play_next([RUNNING, DONE])
    code, out, err = _cli(capsys, 'rehearse', MIGRATION, '--export', gcs_export,
                          '--verify', VALIDATION, '--no-wait', *_dataflow(stub, temp_location))
    assert code == 0, err
    assert 'goes on on Dataflow' in out
    record = _rehearsal(datastore_target, out)
    assert record.is_running and record.in_flight_run == record.run_id
    # Whoever reads it next takes it on, a step at a time, as its runs end.
    seen = []
    for _ in range(8):
        code, out, _ = _cli(capsys, 'rehearsal', record.rehearsal_id)
        seen.append(re.search(r'^# Rehearsal of .*$', out, re.M).group(0))
        if 'PASSED' in out:
            break
    assert seen[0] == f'# Rehearsal of {MIGRATION}: RUNNING'
    assert seen[-1] == f'# Rehearsal of {MIGRATION}: PASSED'
    assert len(stub.requests_of('POST')) == 2


@pytest.mark.parametrize('stage', ['job', 'verify'])
def test_cancel_a_rehearsal_on_dataflow_in_the_middle(
        capsys, datastore_target, stub, gcs, gcs_export, temp_location, stage):
    if stage == 'job':
        stub.play_next([RUNNING])
    else:
        stub.play_next([DONE])
        stub.play_next([RUNNING])
    code, out, err = _cli(capsys, 'rehearse', MIGRATION, '--export', gcs_export,
                          '--verify', VALIDATION, '--no-wait', *_dataflow(stub, temp_location))
    assert code == 0, err
    record = _rehearsal(datastore_target, out)
    in_flight = runs.RunStore(datastore_target).get(record.in_flight_run)
    assert in_flight.job_name == (MIGRATION if stage == 'job' else VALIDATION)

    code, out, err = _cli(capsys, 'cancel', record.rehearsal_id, '--user', 'rel')
    assert code == 0, err
    record = rehearsal_records.RehearsalStore(datastore_target).get(record.rehearsal_id)
    assert record.verdict == 'failed' and record.canceled['by'] == 'rel'
    assert record.reasons[-1] == 'Canceled by rel.'
    # The Dataflow job in flight was canceled, and nothing started after it.
    [put] = stub.requests_of('PUT')
    assert put.path.split('?')[0].endswith(f'/jobs/{in_flight.dataflow.job_id}')
    assert runs.RunStore(datastore_target).get(in_flight.run_id).status == runs.CANCELED
    assert len(stub.requests_of('POST')) == (1 if stage == 'job' else 2)
    code, _, err = _cli(capsys, 'cancel', record.rehearsal_id)
    assert code == cli.EXIT_USAGE and 'already ended (failed); nothing to cancel' in err


def test_the_console_cancels_a_rehearsal_on_dataflow_as_the_signed_in_person(
        capsys, datastore_target, stub, gcs, gcs_export, temp_location):
    from beam_jobs import console as console_lib
    from starlette.testclient import TestClient
    from tests import rehearsal_registry
    stub.play_next([RUNNING])
    code, out, err = _cli(capsys, 'rehearse', MIGRATION, '--export', gcs_export,
                          '--no-wait', *_dataflow(stub, temp_location))
    assert code == 0, err
    record = _rehearsal(datastore_target, out)
    console = console_lib.Console(rehearsal_registry.REGISTRY,
                                  runs.RunStore(datastore_target), 'tests.rehearsal_registry')
    app = console_lib.create_app(console, owner='rel')
    with TestClient(app, base_url='http://127.0.0.1:8080') as client:
        page = client.get(f'/rehearsals/{record.rehearsal_id}').text
        assert 'Cancel this rehearsal' in page and 'canceled by <strong' in page
        # The signed-in name is recorded, whatever the body says.
        response = client.post(f'/api/rehearsals/{record.rehearsal_id}/cancel',
                               json={'user': 'someone-else'})
        assert response.status_code == 200, response.text
        view = response.json()
        assert view['verdict'] == 'failed' and view['canceled']['by'] == 'rel'
        assert view['reasons'][-1] == 'Canceled by rel.'
        assert 'Cancel this rehearsal' not in client.get(
            f'/rehearsals/{record.rehearsal_id}').text
        response = client.post(f'/api/rehearsals/{record.rehearsal_id}/cancel', json={})
        assert response.status_code == 409
        assert 'nothing to cancel' in response.json()['error']
    assert len(stub.requests_of('PUT')) == 1


def test_a_rehearsal_on_dataflow_needs_its_data_on_cloud_storage(
        capsys, datastore_target, stub, temp_location, tmp_path):
    code, out, err = _cli(capsys, 'rehearse', MIGRATION, '--export', str(tmp_path),
                          *_dataflow(stub, temp_location))
    assert code == cli.EXIT_USAGE and out == ''
    assert 'A rehearsal on Dataflow reads and writes Cloud Storage' in err
    assert f'the export {tmp_path} is not a gs:// path' in err
    assert stub.requests == []


def test_the_after_state_writer_keeps_only_the_bundles_a_runner_committed(
        datastore_target, tmp_path):
    """Dataflow retries a failed bundle and splits bundles to rebalance work:
    a retried bundle writes its file again. The sink renames only the
    committed bundles' files into place, and the manifest names them."""
    with testing.ndb_context(datastore_target):
        notes = fx.notes(10)
        export = write_export(notes, str(tmp_path / 'export'),
                              project=datastore_target.project)
        changed = []
        for note in notes[:6]:
            note.text = f'changed {note.key.id()}'
            changed.append(encode.encode(encode.client_entity(note),
                                         datastore_target.project))
    folder = str(tmp_path / 'after')
    sink = after_state.sink(folder, after_state.PUTS)
    begun = sink.initialize_write()

    def bundle(uid, records):
        writer = sink.open_writer(begun, uid)
        for record in records:
            writer.write(record)
        return writer.close()

    first = bundle('bundle-1', changed[:3])
    bundle('bundle-1-retried', changed[:3])    # its result never committed
    split_off = bundle('bundle-2', changed[3:])
    committed = [first, split_off]
    list(sink.finalize_write(begun, committed, sink.pre_finalize(begun, committed)))
    after_state.finish(folder, export, 'run-1', 'RewriteNotesJob',
                       {'put': {'NoteModel': 6}, 'delete': {}})

    manifest = json.loads((tmp_path / 'after' / 'after_state.json').read_text())
    assert manifest['files'] == {'puts': ['part-00000-of-00002', 'part-00001-of-00002'],
                                 'deletes': []}
    assert sorted(os.listdir(tmp_path / 'after' / 'puts')) == manifest['files']['puts']
    read = export_helpers.collect(
        ReadExport(folder, [fx.NoteModel], project=datastore_target.project,
                   namespace=datastore_target.namespace), tmp_path)
    with testing.ndb_context(datastore_target):
        texts = sorted(entities_lib.to_model(e, fx.NoteModel).text for e in read)
    assert len(read) == 10
    assert texts.count('changed note-001') == 1
    assert sum(text.startswith('changed ') for text in texts) == 6


def test_a_manifest_names_its_files_and_readers_read_only_those(
        datastore_target, tmp_path):
    """A file left beside an after state (a failed earlier attempt's) is not read."""
    with testing.ndb_context(datastore_target):
        notes = fx.notes(4)
        export = write_export(notes, str(tmp_path / 'export'),
                              project=datastore_target.project)
        stray = write_export([fx.NoteModel(id=f'stray-{i}', text='stray') for i in range(2)],
                             str(tmp_path / 'stray'), project=datastore_target.project)
    folder = tmp_path / 'after'
    (folder / 'puts').mkdir(parents=True)
    after_state.finish(str(folder), export, 'run-1', 'RewriteNotesJob',
                       {'put': {}, 'delete': {}})
    # A stray file, as a crashed attempt could leave, after the manifest was written.
    [data_file] = [p for p in (tmp_path / 'stray').rglob('output-*')]
    (folder / 'puts' / 'part-99999-of-99999').write_bytes(data_file.read_bytes())
    assert stray
    read = export_helpers.collect(
        ReadExport(str(folder), [fx.NoteModel], project=datastore_target.project,
                   namespace=datastore_target.namespace), tmp_path)
    assert len(read) == 4


def test_the_records_say_where_a_dataflow_rehearsal_keeps_its_runs(datastore_target):
    """A reader on any machine finds the runs of a Dataflow rehearsal from its
    record; a local rehearsal of another machine is that machine's."""
    from beam_jobs.rehearsal import rehearse
    store = rehearsal_records.RehearsalStore(record_stores.signoff_target())
    local = store.create('RewriteNotesJob', machine='another-machine',
                         resume={'namespace': datastore_target.namespace})
    assert rehearse.context_for(local, lambda name: None) is None
    assert rehearse.take_on(local, lambda name: None).is_running
