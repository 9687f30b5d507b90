"""lifecycle/run_logs.py: a run's log records go to its own file (stderr
keeps only what `--verbose` asks for), and an end its Datastore could not
take waits on this machine for the next reader."""

import logging

import pytest

from beam_jobs.lifecycle import run_logs


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv('BEAM_JOBS_HOME', str(tmp_path))
    return tmp_path


def _failure() -> ValueError:
    try:
        raise ValueError('a bad value')
    except ValueError as error:
        return error


def test_a_runs_log_and_its_traceback_go_to_its_file_not_stderr(home, capsys):
    with run_logs.capture('run-1') as path:
        logging.getLogger('apache_beam').warning('Beam says a lot')
    run_logs.write_traceback('run-1', _failure())
    assert path == run_logs.log_path('run-1') == home.resolve() / 'logs' / 'run-1.log'
    text = path.read_text()
    assert 'WARNING apache_beam: Beam says a lot' in text
    assert 'The run failed:' in text and 'ValueError: a bad value' in text
    assert capsys.readouterr().err == ''


def test_verbose_shows_warnings_and_the_traceback_on_stderr_too(capsys):
    with run_logs.capture('run-2', verbose=True):
        logging.getLogger('beam_jobs').warning('careful')
        logging.getLogger('beam_jobs').info('only in the file')
        run_logs.write_traceback('run-2', _failure())
    err = capsys.readouterr().err
    assert 'careful' in err and 'ValueError: a bad value' in err
    assert 'only in the file' not in err
    assert 'only in the file' in run_logs.log_path('run-2').read_text()


def test_an_unrecorded_end_is_kept_until_taken_and_dropped():
    assert run_logs.take_end('run-3') is None
    run_logs.save_end('run-3', 'failed', {'error': 'Lost the Datastore'})
    assert run_logs.take_end('run-3') == ('failed', {'error': 'Lost the Datastore'})
    run_logs.drop_end('run-3')
    assert run_logs.take_end('run-3') is None
    run_logs.drop_end('run-3')     # dropping twice is fine
