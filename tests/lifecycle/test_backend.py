"""lifecycle/backend.py: the shared start every backend runs, and a run whose
process is gone ended by whoever reads it next. (Each backend's own launch,
follow and cancel: test_local.py, test_dataflow.py.)"""

import subprocess

import pytest

from beam_jobs.lifecycle import backend, planning, run_logs
from beam_jobs.records import runs
from tests import job_fixtures as fx


@pytest.fixture
def store(datastore_target, tmp_path, monkeypatch):
    monkeypatch.setenv('BEAM_JOBS_HOME', str(tmp_path))   # the runs' logs
    return runs.RunStore(datastore_target)


class _NoRoomBackend(backend.Backend):
    """A backend that cannot take the run: it fails before anything launches."""

    def prepare(self, plan, run_id):
        raise ValueError('no room for this run')

    def launch(self, *args):
        raise AssertionError('never launched')


def test_a_run_that_cannot_be_prepared_ends_failed_saying_why(store):
    plan = planning.plan_run(fx.TopicCountJob)
    run_id = store.create(plan.job_name).run_id
    record = _NoRoomBackend().start(plan, store, run_id)
    assert record.status == runs.FAILED and 'no room for this run' in record.error
    assert store.get(run_id).queued_msec      # queued first, with the plan's figures
    assert 'ValueError: no room for this run' in run_logs.log_path(run_id).read_text()


def test_a_run_whose_process_is_gone_takes_the_end_it_kept(store):
    run_id = store.create('TopicCountJob').run_id
    store.transition(run_id, runs.QUEUED)
    store.transition(run_id, runs.STARTED)
    live = store.get(run_id)
    assert backend.end_if_orphaned(store, live).status == runs.STARTED   # this process
    dead = subprocess.Popen(['true'])
    dead.wait()
    store.update(run_id, pid=dead.pid)
    run_logs.save_end(run_id, runs.FAILED, {'error': 'Lost the Datastore midway.'})
    record = backend.end_if_orphaned(store, store.get(run_id))
    assert (record.status, record.error) == (runs.FAILED, 'Lost the Datastore midway.')
    assert run_logs.take_end(run_id) is None
