"""`beam-jobs` as a release coordinator uses it."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from beam_jobs import cli, testing
from beam_jobs.records import runs
from tests import cli_process
from tests import job_fixtures as fx

REGISTRY = cli_process.REGISTRY


def _cli(capsys, *argv):
    code = cli.main([*REGISTRY, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _run_id(out):
    return re.search(r'^Run (\S+)$', out, re.M).group(1)


def test_list(capsys):
    code, out, _ = _cli(capsys, 'list')
    assert code == 0
    assert 'TopicCountJob\tNoteModel' in out.splitlines()


def test_list_with_the_project_registry(capsys):
    assert cli.main(['list']) == 0   # [tool.beam-jobs] in pyproject.toml
    assert 'InteractionAuditOneOffJob\tExplorationModel' in capsys.readouterr().out


def test_unknown_job_lists_close_matches(capsys, datastore_target):
    code, _, err = _cli(capsys, 'run', 'TopicCountJbo')
    assert code == cli.EXIT_USAGE
    assert "No job named 'TopicCountJbo'. Did you mean: TopicCountJob?" in err


def test_run_status_output_and_runs(capsys, datastore_target):
    testing.put_models(datastore_target, _notes(datastore_target, 6))
    code, out, _ = _cli(capsys, 'run', 'TopicCountJob', '--shard-count', '2')
    assert code == 0
    run_id = _run_id(out)
    assert sorted(l for l in out.splitlines() if l.startswith('[')) == [
        "['art', 2]", "['math', 2]", "['music', 2]"]
    assert '  counter entities_read.NoteModel = 6' in out
    assert re.search(r'^Summary: completed: read NoteModel 6; 3 output lines; '
                     r'0 failed items; [\d.]+ s$', out, re.M)

    code, out, _ = _cli(capsys, 'status', run_id)
    assert code == 0
    assert re.search(r'status: completed$', out, re.M)
    assert re.search(r'shard count: 2$', out, re.M)

    code, out, _ = _cli(capsys, 'output', run_id)
    assert sorted(out.splitlines()) == ["['art', 2]", "['math', 2]", "['music', 2]"]

    code, out, _ = _cli(capsys, 'runs')
    header, first = out.splitlines()[:2]
    assert header.split() == ['RUN', 'ID', 'STATUS', 'STARTED', 'SECONDS', 'LINES', 'FAILED']
    assert first.startswith(run_id) and ' completed ' in first


def test_params_and_dry_run(capsys, datastore_target):
    testing.put_models(datastore_target, _notes(datastore_target, 4, deleted_every=2))
    code, out, _ = _cli(capsys, 'run', 'ParamJob', '--param', 'topic=art')
    assert "['match', ['note-001']]" in out
    code, out, _ = _cli(capsys, 'run', 'TopicTagMigrationJob', '--dry-run')
    assert 'DRY RUN: would put 2 TagModel (nothing was written)' in out
    with testing.ndb_context(datastore_target):
        assert fx.TagModel.query().count() == 0


def test_failed_items_are_impossible_to_miss(capsys, datastore_target):
    with testing.ndb_context(datastore_target):
        testing.put_models(datastore_target, [fx.NoteModel(id='x', text='bad'),
                                              fx.NoteModel(id='y', text='fine')])
    code, out, err = _cli(capsys, 'run', 'FailingMapJob')
    assert code == cli.EXIT_ITEMS_FAILED
    assert 'ERROR in map for NoteModel/x: ValueError: cannot migrate note x' in out
    assert '!!! 1 ITEM(S) FAILED' in err
    code, out, err = _cli(capsys, 'status', _run_id(out))
    assert re.search(r'failed items: 1$', out, re.M)
    assert '!!! 1 ITEM(S) FAILED' in err


def test_bad_input_gets_a_clear_error(capsys, datastore_target):
    assert _cli(capsys, 'run', 'ParamJob', '--param', 'topic')[2].startswith(
        "beam-jobs: --param 'topic' is not KEY=VALUE")
    assert 'shard_count must be a positive' in _cli(
        capsys, 'run', 'TopicCountJob', '--shard-count', '0')[2]
    assert 'No run' in _cli(capsys, 'status', 'Nope-1-1')[2]
    code, out, err = _cli(capsys, 'run', 'TopicCountJob', '--direct_running_mode=sideways')
    assert code == cli.EXIT_USAGE and out == ''
    assert "Bad pipeline flag (argument --direct_running_mode: invalid choice" in err
    assert runs.RunStore(datastore_target).recent() == []


def test_cancel_a_running_job(capsys, datastore_target):
    testing.put_models(datastore_target, _notes(datastore_target, 200))
    proc, run_id = cli_process.start_run('SlowJob')
    store = runs.RunStore(datastore_target)
    cli_process.wait_until_started(store, run_id)
    time.sleep(1)
    code, out, _ = _cli(capsys, 'cancel', run_id, '--user', 'coordinator')
    assert code == 0 and out.strip() == f'Run {run_id}: canceled'
    assert proc.wait(timeout=60) == cli.EXIT_FAILED
    record = store.get(run_id)
    assert record.status == runs.CANCELED
    assert record.canceled_by == 'coordinator'


def test_ctrl_c_ends_the_run_canceled(datastore_target):
    testing.put_models(datastore_target, _notes(datastore_target, 200))
    proc, run_id = cli_process.start_run('SlowJob')
    store = runs.RunStore(datastore_target)
    cli_process.wait_until_started(store, run_id)
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    record = store.get(run_id)
    assert record.status == runs.CANCELED
    assert 'Ctrl-C' in record.error


def _notes(target, count, **kwargs):
    with testing.ndb_context(target):
        return fx.notes(count, **kwargs)


@pytest.fixture(autouse=True)
def _quiet_emulator_notice(monkeypatch):
    monkeypatch.setenv('PYTHONWARNINGS', 'ignore')


def test_a_reader_that_stops_reading_gets_no_traceback(datastore_target):
    """`beam-jobs runs | head -1`: the pipe closes early; that is not an error."""
    store = runs.RunStore(datastore_target)
    for _ in range(3):
        store.create('TopicCountJob')
    proc = subprocess.Popen([sys.executable, '-m', 'beam_jobs.cli', 'runs'],
                            env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()   # before it prints anything: it takes seconds to start
    err = proc.stderr.read().decode()
    assert proc.wait() == 0 and 'Traceback' not in err, err
