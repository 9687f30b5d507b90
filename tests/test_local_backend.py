"""The local backend's end when its Datastore is gone (lifecycle/local.py)."""

from beam_jobs.lifecycle import local
from beam_jobs.lifecycle import run_logs
from beam_jobs.records import runs


def test_an_end_its_datastore_cannot_take_is_kept_under_the_jobs_name(
        datastore_target, monkeypatch, tmp_path):
    store = runs.RunStore(datastore_target)
    run_id = store.create('RewriteNotesJob').run_id
    monkeypatch.setenv('BEAM_JOBS_HOME', str(tmp_path))
    monkeypatch.setenv('DATASTORE_EMULATOR_HOST', 'localhost:9')   # nobody answers
    record = local.LocalBackend().end(store, run_id, runs.FAILED,
                                      job_name='RewriteNotesJob', error='it broke')
    assert (record.run_id, record.job_name, record.status, record.error) == (
        run_id, 'RewriteNotesJob', runs.FAILED, 'it broke')
    assert run_logs.take_end(run_id) == (runs.FAILED, {'error': 'it broke'})
    run_logs.drop_end(run_id)
