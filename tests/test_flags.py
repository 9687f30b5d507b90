"""A mistyped flag never runs a job: every flag is beam-jobs' own or Beam's."""

import pytest

from beam_jobs import cli, flags, testing
from beam_jobs.records import runs
from pipelines import sample_data
from pipelines.models import exp_models

MIGRATION = 'ExplorationContentMigrationOneOffJob'


def _cli(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def explorations(datastore_target):
    sample_data.load(30, datastore_target)
    return datastore_target


def _legacy_count(target):
    with testing.ndb_context(target):
        return exp_models.ExplorationModel.query(
            exp_models.ExplorationModel.states_schema_version == 1).count()


def _records(target):
    return runs.RunStore(target).recent(50)


@pytest.mark.parametrize('argv, message', [
    (['--dryrun'], 'Unknown flag --dryrun (neither beam-jobs nor Beam knows it, '
                   'so nothing was run): did you mean --dry-run?'),
    (['--parm', 'x=1'], 'Unknown flag --parm (neither beam-jobs nor Beam knows '
                        'it, so nothing was run): did you mean --param?'),
    (['--dry'], 'did you mean --dry-run?'),
    (['--projct=p'], 'did you mean --project?'),
    (['--shard-count', 'x'], "argument --shard-count/--shard_count: invalid int "
                             "value: 'x'"),
    (['--direct_running_mode=sideways'], "Bad pipeline flag (argument "
                                         "--direct_running_mode: invalid choice: 'sideways'"),
    (['--runner=DirectRunnr'], '--runner=DirectRunnr is not a runner Beam knows'),
    (['stray'], "Unexpected argument 'stray'"),
])
def test_unknown_flags_and_bad_values_are_refused_before_anything_runs(
        capsys, explorations, argv, message):
    before = _legacy_count(explorations)
    code, out, err = _cli(capsys, 'run', MIGRATION, *argv)
    assert code == cli.EXIT_USAGE
    assert message in err
    assert err.count('\n') == 1 and out == ''   # one sentence, no run id
    assert _legacy_count(explorations) == before   # nothing migrated
    assert _records(explorations) == []            # no run record left behind


def test_dry_run_in_either_spelling_is_ours_not_beams(capsys, explorations):
    before = _legacy_count(explorations)
    for spelling in ('--dry_run', '--dry-run'):
        code, out, _ = _cli(capsys, 'run', MIGRATION, spelling)
        assert code == cli.EXIT_OK
        assert f'DRY RUN: would put {before} ExplorationModel' in out
    assert _legacy_count(explorations) == before
    assert [r.params for r in _records(explorations)] == [{'dry_run': True}] * 2


def test_shard_count_in_beams_spelling_reaches_the_read(capsys, explorations):
    code, _, _ = _cli(capsys, 'run', MIGRATION, '--shard_count', '4', '--fail_fast',
                      '--dry_run')
    assert code == cli.EXIT_OK
    record = _records(explorations)[0]
    assert record.shard_count == 4 and record.params['fail_fast'] is True
    # Beam's own log of the read says how it split the query.
    with open(record.log_file, encoding='utf-8') as log:
        assert 'Splitting the query into 4 splits' in log.read()


@pytest.mark.parametrize('beam_flags', [
    ['--direct_num_workers=2'], ['--runner=DirectRunner'],
    ['--runner', 'FnApiRunner', '--direct_running_mode', 'in_memory']])
def test_real_beam_flags_still_go_through(capsys, explorations, beam_flags):
    code, out, _ = _cli(capsys, 'run', 'InteractionAuditOneOffJob', *beam_flags)
    assert code == cli.EXIT_OK, out
    assert 'Summary: completed: read ExplorationModel 30;' in out


def test_the_nearest_flag_prefers_our_spelling():
    assert flags.nearest('--dryrun', ['--dry-run', '--dry_run']) == '--dry-run'
    assert flags.nearest('--shardcount', ['--shard-count', '--shard_count']) == '--shard-count'
    assert flags.nearest('--zzzzzz', ['--dry-run']) is None
