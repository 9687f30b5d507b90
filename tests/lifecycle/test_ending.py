"""lifecycle/ending.py: a run ends once, whoever sees the end, with the job's
hooks around the move and their errors kept on the record."""

import pytest

from beam_jobs import job_class as job_class_lib
from beam_jobs.lifecycle import ending
from beam_jobs.records import runs
from tests import job_fixtures as fx


@pytest.fixture
def store(datastore_target):
    fx.HOOK_CALLS.clear()
    job_class_lib.remember(fx.HookedJob)
    job_class_lib.remember(fx.BrokenHooksJob)
    return runs.RunStore(datastore_target)


def _started(store, job_name):
    run_id = store.create(job_name).run_id
    store.transition(run_id, runs.QUEUED)
    store.transition(run_id, runs.STARTED)
    return run_id


def test_a_run_ends_once_and_its_hook_runs_once(store):
    run_id = _started(store, 'HookedJob')
    assert ending.end_run(store, run_id, runs.COMPLETED).status == runs.COMPLETED
    with pytest.raises(runs.InvalidTransitionError):
        ending.end_run(store, run_id, runs.FAILED, error='seen late')
    # Whoever sees an end second leaves the first one standing.
    assert ending.end_unless_ended(store, run_id, runs.FAILED).status == runs.COMPLETED
    assert fx.HOOK_CALLS == [('post_completed', run_id)]


def test_a_cancel_says_who_canceled_to_both_cancel_hooks(store):
    run_id = store.create('HookedJob').run_id
    store.update(run_id, canceled_by='alice')
    record = ending.end_run(store, run_id, runs.CANCELED, stop_reason='stopped by SIGTERM')
    assert record.error == 'Canceled by alice.'
    assert fx.HOOK_CALLS == [('pre_cancel', run_id, 'Canceled by alice.'),
                             ('post_cancel', run_id, 'Canceled by alice.')]


def test_a_hook_that_raises_is_kept_on_the_record_and_the_end_stands(store):
    run_id = _started(store, 'BrokenHooksJob')
    record = ending.end_run(store, run_id, runs.COMPLETED)
    assert record.status == runs.COMPLETED
    assert store.get(run_id).hook_errors == [
        '_post_completed_hook: RuntimeError: post_completed broke']


def test_the_cancel_message_says_who_else_why():
    def record(**fields):
        return runs.RunRecord(run_id='r-1', job_name='J', **fields)
    assert ending.cancel_message(record(canceled_by='bob'), 'Ctrl-C') == 'Canceled by bob.'
    assert ending.cancel_message(record(), 'interrupted (Ctrl-C)') == \
        'Canceled: interrupted (Ctrl-C)'
    assert ending.cancel_message(record(), None) == 'Canceled.'
