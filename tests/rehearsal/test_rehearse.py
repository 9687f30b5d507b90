"""Rehearsals: a job over an export, its after state, checks, verdict, sign-off."""

import hashlib
import os
import re

import pytest

from beam_jobs import cli, identity, options, testing
from beam_jobs import entities as entities_lib
from beam_jobs.records import runs
from beam_jobs.export import ReadExport, write_export
from beam_jobs.rehearsal import expect
from beam_jobs.records import rehearsals as record_lib
from pipelines import sample_data
from tests import export_helpers
from tests import job_fixtures as fx

REGISTRY = ['--registry', 'tests.rehearsal_registry']
MIGRATION = 'ExplorationContentMigrationOneOffJob'
VALIDATION = 'ExplorationStatesSchemaValidationOneOffJob'
EXPECTED = os.path.join(os.path.dirname(__file__), '..', '..', 'pipelines', 'expected',
                        'exploration_content_migration.txt')


def _cli(capsys, *argv):
    code = cli.main([*REGISTRY, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _rehearsal_id(out):
    first = out.splitlines()[0]
    assert first.startswith('Rehearsal ID: '), out
    return first.split(': ', 1)[1]


def _after_state(out):
    return re.search(r'^After state: (\S+)$', out, re.M).group(1)


def _files_digest(folder):
    digest = {}
    for root, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(root, name), 'rb') as handle:
                digest[os.path.join(root, name)] = hashlib.sha256(handle.read()).hexdigest()
    return digest


@pytest.fixture
def notes_export(datastore_target, tmp_path):
    """An export of 9 notes (every fourth deleted), written without the
    emulator: the emulator holds none of them."""
    with testing.ndb_context(datastore_target):
        notes = fx.notes(9, deleted_every=4)
        path = write_export(notes, str(tmp_path / 'notes'),
                            project=datastore_target.project, entities_per_file=4)
    return path, {note.key.id(): note for note in notes}


def _read(path, models, target, folder):
    entities = export_helpers.collect(
        ReadExport(path, models, project=target.project, namespace=target.namespace),
        folder)
    with testing.ndb_context(target):
        return {e.key.path_elements[-1]: entities_lib.to_model(
            e, {'NoteModel': fx.NoteModel, 'TagModel': fx.TagModel}[e.key.path_elements[0]])
            for e in entities}


@pytest.mark.parametrize('processes', [False, True])
def test_the_after_state_is_the_export_plus_the_writes(
        capsys, datastore_target, notes_export, tmp_path, monkeypatch, processes):
    if processes:   # as a large export runs: writes from worker processes
        monkeypatch.setenv('BEAM_JOBS_EXPORT_PROCESSES_FROM', '1')
        monkeypatch.setattr(options.os, 'cpu_count', lambda: 2)
    path, notes = notes_export
    before = _files_digest(tmp_path / 'notes')
    code, out, err = _cli(capsys, 'rehearse', 'RewriteNotesJob', '--export', path)
    assert code == 0, err
    after = _after_state(out)
    record = record_lib.RehearsalStore(datastore_target).get(_rehearsal_id(out))
    assert record.writes == {'put': {'NoteModel': 2, 'TagModel': 2},
                             'delete': {'NoteModel': 3}}

    read = _read(after, [fx.NoteModel, fx.TagModel], datastore_target, tmp_path)
    expected = {}
    for ident, note in notes.items():
        if note.deleted:
            continue                                  # deleted: gone
        if note.topic == 'math':                      # overwritten, and a tag added
            expected[ident] = ('NoteModel', 'rewritten', note.topic)
            expected[f'tag-{ident}'] = ('TagModel', None, note.topic)
        else:                                         # untouched
            expected[ident] = ('NoteModel', note.text, note.topic)
    got = {ident: (type(model).__name__, getattr(model, 'text', None),
                   getattr(model, 'topic', None) or getattr(model, 'name', None))
           for ident, model in read.items()}
    assert got == expected
    assert _files_digest(tmp_path / 'notes') == before      # the export is untouched
    with testing.ndb_context(datastore_target):                # no entity reached the emulator
        assert fx.NoteModel.query().count() == 0 and fx.TagModel.query().count() == 0
    # Any job can run over the after state later, as over an export.
    code, out, _ = _cli(capsys, 'run', 'TopicCountJob', '--export', after)
    assert code == 0
    assert sorted(line for line in out.splitlines() if line.startswith('[')) == [
        "['art', 2]", "['math', 2]", "['music', 2]"]


def test_after_states_chain_each_key_once_as_the_last_layer_left_it(
        capsys, datastore_target, notes_export, tmp_path):
    path, notes = notes_export
    code, out, err = _cli(capsys, 'rehearse', 'RewriteNotesJob', '--export', path)
    assert code == 0, err
    first = _after_state(out)
    # The same job again, over the first after state: it puts the same keys
    # again (layer 2 over layer 1), and the deleted notes stay gone.
    code, out, err = _cli(capsys, 'rehearse', 'RewriteNotesJob', '--export', first)
    assert code == 0, err
    assert '- put: NoteModel 2, TagModel 2\n- delete: none' in out
    second = _after_state(out)
    entities = export_helpers.collect(
        ReadExport(second, [fx.NoteModel, fx.TagModel], project=datastore_target.project,
                   namespace=datastore_target.namespace), tmp_path)
    names = sorted(e.key.path_elements[-1] for e in entities)
    kept = sorted(ident for ident, note in notes.items() if not note.deleted)
    tags = sorted(f'tag-{ident}' for ident, note in notes.items()
                  if note.topic == 'math' and not note.deleted)
    assert names == sorted(kept + tags)      # once each: no stale copy below


def test_the_demo_migration_rehearses_passes_and_can_be_approved(
        capsys, datastore_target, tmp_path):
    with testing.ndb_context(datastore_target):
        path = write_export(sample_data.explorations(60), str(tmp_path / 'demo'),
                            project=datastore_target.project)
    code, out, err = _cli(capsys, 'rehearse', MIGRATION, '--export', path,
                          '--verify', VALIDATION, '--expect', EXPECTED)
    assert code == 0, out + err
    rehearsal_id = _rehearsal_id(out)
    assert '# Rehearsal of ExplorationContentMigrationOneOffJob: PASSED' in out
    record = record_lib.RehearsalStore(datastore_target).get(rehearsal_id)
    assert record.verdict == 'passed' and record.reasons == []
    assert record.writes == {'put': {'ExplorationModel': 20}, 'delete': {}}
    assert record.export['entities'] == {'ExplorationModel': 60}
    assert record.code_version['source_file'].endswith('pipelines/exp_jobs_one_off.py')
    assert len(record.code_version['source_sha256']) == 64
    assert [v['passed'] for v in record.verify] == [True]
    assert record.expect['passed'] and record.after_state == _after_state(out)
    assert 'If a run fails midway' in record.coordinator_notes
    assert set(record.durations) == {'job', 'verify', 'total'}
    store = runs.RunStore(datastore_target)
    assert store.get(record.run_id).status == runs.COMPLETED
    assert store.get(record.verify[0]['run_id']).source['type'] == 'export'

    code, out, _ = _cli(capsys, 'rehearsals')
    assert re.search(rf'^{rehearsal_id}\s+passed\s+-\s', out, re.M)
    me = identity.machine_user()   # who signs off: this machine's user
    code, out, _ = _cli(capsys, 'approve', rehearsal_id,
                        '--note', 'checked the validation output')
    assert code == 0 and f'approved by {me}' in out
    code, out, _ = _cli(capsys, 'rehearsal', rehearsal_id)
    assert f'- Approved by {me} on ' in out and 'checked the validation output' in out
    assert record_lib.RehearsalStore(datastore_target).get(rehearsal_id).is_approved


def test_a_broken_migration_fails_its_rehearsal_naming_the_failed_ids(
        capsys, datastore_target, tmp_path):
    with testing.ndb_context(datastore_target):
        path = write_export(sample_data.explorations(30), str(tmp_path / 'demo'),
                            project=datastore_target.project)
    code, out, err = _cli(capsys, 'rehearse', 'BrokenMigrationOneOffJob',
                          '--export', path, '--verify', VALIDATION,
                          '--expect', EXPECTED)
    assert code == cli.EXIT_ITEMS_FAILED
    assert '# Rehearsal of BrokenMigrationOneOffJob: FAILED' in out
    assert '!!! REHEARSAL FAILED' in err
    for ident in ('exp-000007', 'exp-000014', 'exp-000021', 'exp-000028'):
        assert f'ExplorationModel `{ident}`: ValueError: unsupported state layout' in out
    record = record_lib.RehearsalStore(datastore_target).get(_rehearsal_id(out))
    assert record.verdict == 'failed'
    assert [item['key'] for item in record.failed_items] == [
        'exp-000007', 'exp-000014', 'exp-000021', 'exp-000028']
    assert record.reasons[0] == '4 item(s) failed in the job\'s run.'
    assert record.reasons[1].startswith(f'Verify job {VALIDATION} reported 2 ERROR line(s)')
    assert record.expect['unexpected'] and not record.expect['passed']
    code, _, err = _cli(capsys, 'approve', record.rehearsal_id)
    assert code == cli.EXIT_USAGE
    assert 'only a passed rehearsal can be approved' in err
    assert not record_lib.RehearsalStore(datastore_target).get(record.rehearsal_id).approvals


@pytest.mark.parametrize('argv, message', [
    (['rehearse', 'NoSuchJob', '--export', '{export}'], "No job named 'NoSuchJob'"),
    (['rehearse', 'RewriteNotesJob', '--export', '{export}', '--verify', 'Nope'],
     "No job named 'Nope'"),
    (['rehearse', 'RewriteNotesJob', '--export', '{export}', '--expect', '/no/file'],
     'Cannot read the expected output file /no/file'),
    (['rehearse', 'RewriteNotesJob'], 'the following arguments are required: --export'),
    (['rehearse', 'RewriteNotesJob', '--export', '/no/export'], '/no/export'),
    (['rehearse', 'RewriteNotesJob', '--export', '{export}', '--dryrun'],
     'did you mean --dry-run?'),
    (['rehearsal', 'rehearsal-Nope-1-1'], "No rehearsal 'rehearsal-Nope-1-1'"),
    (['approve', 'rehearsal-Nope-1-1'], "No rehearsal 'rehearsal-Nope-1-1'"),
    (['approve', 'rehearsal-Nope-1-1', '--user', 'not-me'], 'sign off as yourself'),
])
def test_bad_input_gets_one_sentence_and_nothing_runs(
        capsys, datastore_target, notes_export, argv, message):
    path, _ = notes_export
    code, out, err = _cli(capsys, *[arg.format(export=path) for arg in argv])
    assert code == cli.EXIT_USAGE, out + err
    assert message in err and err.count('\n') == 1 and out == ''
    assert record_lib.RehearsalStore(datastore_target).recent() == []
    assert runs.RunStore(datastore_target).recent() == []


def test_expected_output_matching(tmp_path):
    path = tmp_path / 'expected.txt'
    path.write_text("['MIGRATED', 3]\n\nre:\\['ALREADY_MIGRATED', \\d+\\]\nre:WRITES: .*\n")
    expected = expect.parse(str(path))
    assert expect.check(expected, ["['MIGRATED', 3]", "['ALREADY_MIGRATED', 12]",
                                   'WRITES: put 3 ExplorationModel']) == {
        'passed': True, 'missing': [], 'unexpected': []}
    assert expect.check(expected, ["['MIGRATED', 4]", "['ALREADY_MIGRATED', 12]",
                                   'ERROR in map for X/1: boom']) == {
        'passed': False, 'missing': ["['MIGRATED', 3]", 're:WRITES: .*'],
        'unexpected': ["['MIGRATED', 4]", 'ERROR in map for X/1: boom']}
    # A regex must match the whole line, not a part of it.
    assert not expect.check(expected, ["x['ALREADY_MIGRATED', 1]"])['passed']
    path.write_text('re:[unclosed\n')
    with pytest.raises(ValueError, match=r'line 1: .* is not a regular expression'):
        expect.parse(str(path))
