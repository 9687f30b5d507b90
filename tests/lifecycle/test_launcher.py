"""The ends a surface asks of the launcher for a run that never started
(lifecycle/launcher.py): refused, not started, not needed. No surface ends a
record itself."""

from beam_jobs.lifecycle import follow
from beam_jobs.lifecycle import launcher
from beam_jobs.records import runs


def test_a_refused_run_ends_failed_with_the_refusal_once(datastore_target):
    store = runs.RunStore(datastore_target)
    run_id = store.create('RewriteNotesJob').run_id
    launcher.refuse(store, run_id, 'shard_count must be a positive whole number.')
    record = store.get(run_id)
    assert (record.status, record.error) == (
        runs.FAILED, 'shard_count must be a positive whole number.')
    launcher.refuse(store, run_id, 'a second refusal')    # the first end stands
    launcher.refuse(store, 'NoSuchJob-0', 'no record')     # and nothing is made
    assert store.get(run_id).error == 'shard_count must be a positive whole number.'


def test_a_run_its_process_never_started_ends_failed_while_still_new(datastore_target):
    store = runs.RunStore(datastore_target)
    new = store.create('RewriteNotesJob').run_id
    ended = launcher.end_unstarted(store, new, 'Could not start its process.',
                                   log_file='/logs/run.out')
    assert ended is not None
    assert (ended.status, ended.error, ended.log_file) == (
        runs.FAILED, 'Could not start its process.', '/logs/run.out')
    queued = store.create('RewriteNotesJob').run_id
    store.transition(queued, runs.QUEUED)
    assert launcher.end_unstarted(store, queued, 'too late') is None
    assert store.get(queued).status == runs.QUEUED


def test_a_run_not_needed_ends_canceled_with_the_reason(datastore_target):
    store = runs.RunStore(datastore_target)
    run_id = store.create('RewriteNotesJob').run_id
    record = launcher.cancel_unneeded(store, run_id, 'Not needed: another reader '
                                      'started this verify job first.')
    assert record.status == runs.CANCELED
    assert follow.current(store, run_id).error.startswith('Not needed')
