"""Several namespaces in one run: `--namespaces a,b,c` and `all`, on the
Datastore and on an export."""

import json
import uuid

import pytest

from beam_jobs import cli
from beam_jobs import target as target_lib
from beam_jobs import testing
from beam_jobs.io import namespaces as namespaces_lib
from beam_jobs.records import runs
from tests import cli_process
from tests import job_fixtures as fx


def _main(capsys, *argv):
    code = cli.main([*cli_process.REGISTRY, *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _three_namespaces(datastore_target):
    """Three namespaces of this test: 3, 4 and 5 notes (the first of each deleted)."""
    prefix = f'{datastore_target.namespace}-'
    spaces = [f'{prefix}{name}' for name in ('a', 'b', 'c')]
    for count, space in zip((3, 4, 5), spaces):
        target = target_lib.Target(datastore_target.project, space)
        with testing.ndb_context(target):
            testing.put_models(target, fx.notes(count, deleted_every=10))
    return spaces


def _notes_and_tags(project, space):
    with testing.ndb_context(target_lib.Target(project, space)):
        return (sorted(n.key.id() for n in fx.NoteModel.query().fetch()),
                sorted(t.key.id() for t in fx.TagModel.query().fetch()))


def test_one_run_over_three_namespaces_counts_each_and_writes_each_back(
        datastore_target, capsys):
    spaces = _three_namespaces(datastore_target)
    code, out, err = _main(capsys, 'run', 'TopicTagMigrationJob',
                           '--namespaces', ','.join(spaces))
    assert code == 0, err
    summary = next(line for line in out.splitlines() if line.startswith('Summary:'))
    assert (f'read NoteModel 12 (namespace {spaces[0]} 3, namespace {spaces[1]} 4, '
            f'namespace {spaces[2]} 5)') in summary
    # The records stay in the run's own namespace (here the test's).
    record = runs.RunStore(datastore_target).recent(1)[0]
    assert record.source['namespaces'] == spaces
    assert record.counters[f'namespace_read.{spaces[1]}'] == 4
    # Each note's tag went to the note's own namespace; the first notes were deleted there.
    for count, space in zip((3, 4, 5), spaces):
        notes, tags = _notes_and_tags(datastore_target.project, space)
        assert notes == [f'note-{i:03d}' for i in range(1, count)]
        assert tags == [f'tag-note-{i:03d}' for i in range(1, count)]
    assert _notes_and_tags(datastore_target.project, datastore_target.namespace) == ([], [])


def test_namespaces_all_lists_them_and_unknown_ones_are_refused(datastore_target, capsys):
    spaces = _three_namespaces(datastore_target)
    listed = namespaces_lib.listed(datastore_target)
    assert set(spaces) <= set(listed)
    with pytest.raises(ValueError, match='No namespace nowhere-at-all in the Datastore'):
        namespaces_lib.resolve(['nowhere-at-all'], listed, 'the Datastore of here')
    code, _, err = _main(capsys, 'run', 'TopicCountJob', '--namespaces',
                         f'{spaces[0]},nowhere-{uuid.uuid4().hex[:6]}')
    assert code == 2
    assert 'No namespace nowhere-' in err and spaces[0] in err
    code, _, err = _main(capsys, 'run', 'TopicCountJob', '--namespaces', spaces[0],
                         '--namespace', spaces[1])
    assert code == 2 and '--namespaces reads several namespaces' in err
    assert runs.RunStore(datastore_target).recent(5) == []


def test_parse_names_the_default_namespace_and_keeps_all_alone():
    assert namespaces_lib.parse('a, b,(default),a') == ['a', 'b', '']
    assert namespaces_lib.parse('ALL') == ['all']
    with pytest.raises(ValueError, match='`all` goes alone'):
        namespaces_lib.parse('a,all')


def test_an_export_of_two_namespaces_is_read_in_one_run(datastore_target, capsys, tmp_path):
    spaces = _three_namespaces(datastore_target)[:2]
    code, out, err = _main(capsys, 'export', str(tmp_path / 'export'), '--kinds',
                           'NoteModel', '--namespaces', ','.join(spaces))
    assert code == 0, err
    both = out.strip().splitlines()[-1]
    code, out, err = _main(capsys, 'run', 'TopicCountJob', '--export', both,
                           '--namespaces', 'all')
    assert code == 0, err
    summary = next(line for line in out.splitlines() if line.startswith('Summary:'))
    assert f'read NoteModel 7 (namespace {spaces[0]} 3, namespace {spaces[1]} 4)' in summary
    record = runs.RunStore(datastore_target).recent(1)[0]
    assert json.dumps(record.source['namespaces']) == json.dumps(spaces)


def test_the_console_starts_a_run_over_several_namespaces(datastore_target):
    from beam_jobs.console import launch
    from tests import fixture_registry
    spaces = _three_namespaces(datastore_target)
    request = launch.check({'job': 'TopicCountJob', 'namespaces': ','.join(spaces[:2])},
                           fixture_registry.REGISTRY, datastore_target.namespace)
    assert request.plan.namespaces == tuple(spaces[:2])
    argv = launch.command(request, 'RUN-1', 'tests.fixture_registry',
                          datastore_target.namespace)
    # The record stays in the console's namespace; the run reads the two.
    assert argv[3] == f'--records-namespace={datastore_target.namespace}'
    assert f'--namespaces={",".join(spaces[:2])}' in argv
    assert not any(arg.startswith('--namespace=') for arg in argv)
    with pytest.raises(launch.BadStartRequest, match='No namespace nowhere'):
        launch.check({'job': 'TopicCountJob', 'namespaces': 'nowhere'},
                     fixture_registry.REGISTRY, datastore_target.namespace)
