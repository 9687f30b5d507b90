"""Named databases (Firestore in Datastore mode): runs read and write theirs
alone, on the Firestore emulator; the Datastore emulator is refused; the gate
binds an approval to its database; a Dataflow graph names it."""

import datetime
import re

from apache_beam.portability.api import beam_runner_api_pb2

from beam_jobs import cli
from beam_jobs import target as target_lib
from beam_jobs import testing
from beam_jobs.lifecycle import code_version
from beam_jobs.lifecycle import gate
from beam_jobs.records import rehearsals as rehearsal_records
from beam_jobs.records import runs
from beam_jobs.rehearsal import signoff
from tests import cli_process
from tests import job_fixtures as fx
from tests.storage_emulator import BUCKET


def _main(capsys, *argv):
    code = cli.main([*cli_process.REGISTRY, *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _notes(target, count):
    with testing.ndb_context(target):
        testing.put_models(target, fx.notes(count, deleted_every=3))


def _kept(target):
    client = target_lib.client(target)
    return {kind: sorted(entity.key.id_or_name for entity in client.query(kind=kind).fetch())
            for kind in ('NoteModel', 'TagModel', 'BeamJobRun')}


def test_a_run_in_a_named_database_leaves_the_default_one_untouched(
        firestore_target, capsys):
    default = target_lib.Target(firestore_target.project)
    _notes(firestore_target, 6)
    _notes(default, 4)
    before = _kept(default)
    code, out, err = _main(capsys, 'run', 'TopicTagMigrationJob',
                           '--database', firestore_target.database)
    assert code == 0, err
    assert 'read NoteModel 6;' in out
    mine = _kept(firestore_target)
    assert mine['NoteModel'] == ['note-001', 'note-002', 'note-004', 'note-005']
    assert mine['TagModel'] == ['tag-note-001', 'tag-note-002', 'tag-note-004',
                                'tag-note-005']
    assert len(mine['BeamJobRun']) == 1       # its record is in its database
    assert _kept(default) == before
    record = runs.RunStore(firestore_target).recent(1)[0]
    assert record.source['database'] == firestore_target.database
    # The undo puts the database back as it was, and still leaves the default one.
    code, out, err = _main(capsys, 'revert', record.run_id)
    assert code == 0, err
    assert _kept(firestore_target)['TagModel'] == []
    assert len(_kept(firestore_target)['NoteModel']) == 6
    assert _kept(default) == before


def test_the_datastore_emulator_is_refused_a_named_database(datastore_target, capsys):
    code, _, err = _main(capsys, 'run', 'TopicCountJob', '--database', 'elsewhere')
    assert code == 2
    assert 'the Cloud Datastore emulator, which does not keep databases apart' in err
    assert 'beam-jobs emulator start --firestore' in err
    assert runs.RunStore(datastore_target).recent(1) == []


def test_an_approval_names_its_database(datastore_target, monkeypatch):
    monkeypatch.setenv('BEAM_JOBS_APPROVERS', 'sean')
    job = fx.TopicCountJob
    store = rehearsal_records.RehearsalStore(datastore_target)
    taken = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S_1')
    rehearsed = store.create(job.__name__, verdict='passed', rehearsed_by='ada',
                             code_version=code_version.of(job, {}),
                             export={'timestamp': taken})
    signoff.approve(datastore_target, rehearsed.rehearsal_id, 'sean')
    assert gate.evaluate(job, {}, store).may_run
    elsewhere = gate.evaluate(job, {}, store, database='orders')
    assert not elsewhere.may_run and elsewhere.state == 'not covered'
    assert 'sean approved it for database (default), not orders' in elsewhere.sentence
    monkeypatch.setenv(target_lib.DATABASE_ENV, 'orders')
    monkeypatch.setenv('BEAM_JOBS_APPROVERS', 'sean,lin')
    signoff.approve(datastore_target, rehearsed.rehearsal_id, 'lin')
    assert gate.evaluate(job, {}, store, database='orders').approved_by == ['lin']


def test_a_dataflow_graph_names_the_database_in_its_read_and_write(
        firestore_target, capsys, stub, gcs, temp_location, monkeypatch):
    monkeypatch.setenv('BEAM_JOBS_REQUIRE_REHEARSAL', 'false')
    code, out, err = _main(
        capsys, 'run', 'TopicTagMigrationJob', '--runner=DataflowRunner',
        f'--project={firestore_target.project}', '--region=europe-west1',
        f'--temp_location={temp_location}', f'--dataflow_endpoint={stub.endpoint}',
        '--no_auth')
    assert code == 0, err
    run_id = re.search(r'^Run (\S+)$', out, re.M).group(1)
    assert runs.RunStore(firestore_target).get(run_id).source['database'] == \
        firestore_target.database
    prefix = temp_location.split('/', 3)[3]
    [staged] = [blob for blob in gcs.list_blobs(BUCKET, prefix=prefix)
                if blob.name.endswith('/pipeline.pb')]
    proto = beam_runner_api_pb2.Pipeline.FromString(staged.download_as_bytes())
    named = {t.unique_name for t in proto.components.transforms.values()
             if any(firestore_target.database.encode() in item.payload
                    for item in t.display_data)}
    job = 'RunJob TopicTagMigrationJob'
    assert f'{job}/Read Datastore/SplitQuery' in named
    assert any(name.startswith(f'{job}/Write/Apply writes/') for name in named), named
