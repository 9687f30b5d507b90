"""lifecycle/local.py: the local backend's own end, which keeps on this
machine an end its Datastore cannot take. (A local run to each of its ends,
canceled before it started or while running in another process:
tests/records/test_runs.py, tests/lifecycle/test_hooks.py,
tests/cli/test_run_commands.py, tests/scenarios/test_fault.py.)"""

import socket

from beam_jobs.lifecycle import local, run_logs
from beam_jobs.records import runs


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('localhost', 0))
        return sock.getsockname()[1]


def test_an_end_the_datastore_cannot_take_is_kept_for_the_next_reader(
        datastore_target, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('BEAM_JOBS_HOME', str(tmp_path))
    store = runs.RunStore(datastore_target)
    run_id = store.create('TopicCountJob').run_id
    with monkeypatch.context() as lost:
        lost.setenv('DATASTORE_EMULATOR_HOST', f'localhost:{_free_port()}')
        record = local.LocalBackend().end(store, run_id, runs.CANCELED,
                                          job_name='TopicCountJob',
                                          stop_reason='interrupted (Ctrl-C)')
    assert (record.status, record.error) == (runs.CANCELED, 'Canceled: interrupted (Ctrl-C)')
    assert record.job_name == 'TopicCountJob'   # known, not guessed from the id
    assert run_logs.take_end(run_id) == (runs.CANCELED,
                                         {'error': 'Canceled: interrupted (Ctrl-C)'})
    assert f'Could not record that run {run_id} ended canceled' in capsys.readouterr().err
    assert store.get(run_id).status == runs.NEW      # nothing reached the Datastore

