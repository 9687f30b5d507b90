"""A run whose Datastore disappears midway ends `failed` fast, saying why; a
rerun works."""

import time

from beam_jobs import emulator, testing
from beam_jobs import target as target_lib
from beam_jobs.lifecycle import follow, launcher
from beam_jobs.records import runs
from tests import cli_process
from tests import job_fixtures as fx

# The bound; the watch notices a lost emulator in about 3 s.
LOST_DATASTORE_BOUND_SECS = 30


def test_emulator_lost_during_a_run(tmp_path, monkeypatch):
    monkeypatch.setenv(emulator.HOME_ENV, str(tmp_path / 'home'))
    data_dir = tmp_path / 'datastore'
    first = emulator.start(data_dir=data_dir, project='fault-test')
    try:
        for name, value in first.env().items():
            monkeypatch.setenv(name, value)
        target = target_lib.Target('fault-test')
        with testing.ndb_context(target):
            testing.put_models(target, fx.notes(200))
        proc, run_id = cli_process.start_run('SlowJob')
        store = runs.RunStore(target)
        cli_process.wait_until_started(store, run_id)
        time.sleep(1)
        first.stop()   # the Datastore goes away mid-run (data kept on disk)
        lost_at = time.monotonic()
        out, err = proc.communicate(timeout=300)
        took = time.monotonic() - lost_at
        print(f"lost-emulator run ended after {took:.1f} s")
        assert proc.returncode == 1, (out, err)
        assert took < LOST_DATASTORE_BOUND_SECS, (took, err)
        assert f'Lost the Datastore: the emulator on {first.host} stopped answering' in err
        assert f'Could not record that run {run_id} ended failed' in err
        assert 'Traceback' not in err
    finally:
        first.stop()

    second = emulator.start(data_dir=data_dir, project='fault-test')
    try:
        for name, value in second.env().items():
            monkeypatch.setenv(name, value)
        # The run could not record its end; the first follower records it,
        # with the real reason instead of a generic "orphaned".
        record = follow.current(runs.RunStore(target), run_id)
        assert record.status == runs.FAILED
        assert record.error.startswith(f'Lost the Datastore: the emulator on {first.host}')
        # A rerun works (a quick job: the slow one was only there to be stopped).
        rerun = launcher.run_job(fx.TopicCountJob, target=target)
        assert rerun.status == runs.COMPLETED, rerun.error
        assert rerun.counters['entities_read.NoteModel'] == 200
    finally:
        second.stop()
