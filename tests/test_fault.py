"""A run whose Datastore disappears midway ends `failed`; a rerun works."""

from beam_jobs import datastore, emulator, launcher, runs, testing
from tests import cli_process
from tests import job_fixtures as fx


def test_emulator_lost_during_a_run(tmp_path, monkeypatch):
    data_dir = tmp_path / 'datastore'
    first = emulator.start(data_dir=data_dir, project='fault-test')
    try:
        for name, value in first.env().items():
            monkeypatch.setenv(name, value)
        target = datastore.Target('fault-test')
        with testing.ndb_context(target):
            testing.put_models(target, fx.notes(60))
        proc, run_id = cli_process.start_run('SlowJob')
        store = runs.RunStore(target)
        cli_process.wait_until_started(store, run_id)
        first.stop()   # the Datastore goes away mid-run (data kept on disk)
        # Beam retries the lost Datastore for a while (about two minutes),
        # then the run fails; its process cannot record that and says so.
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 1, (out, err)
        assert f'Could not record that run {run_id} ended failed' in err
    finally:
        first.stop()

    second = emulator.start(data_dir=data_dir, project='fault-test')
    try:
        for name, value in second.env().items():
            monkeypatch.setenv(name, value)
        record = runs.RunStore(target).get(run_id)
        assert record.status == runs.FAILED
        assert record.error.startswith('Orphaned: the process that ran it')
        rerun = launcher.run_job(fx.SlowJob, target=target)
        assert rerun.status == runs.COMPLETED, rerun.error
        assert runs.RunStore(target).output(rerun.run_id) == ["['n', 60]"]
    finally:
        second.stop()
