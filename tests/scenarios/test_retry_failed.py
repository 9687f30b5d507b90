"""`run --retry-failed`: a run finished over only what it left undone."""

import pytest

from beam_jobs import target as target_lib
from beam_jobs import testing
from beam_jobs.io import before_images
from beam_jobs.lifecycle import launcher, planning
from beam_jobs.records import runs
from tests import job_fixtures as fx

JOB = fx.NoteTextMigrationJob


@pytest.fixture(autouse=True)
def faults():
    fx.NOTE_MIGRATION_FAULTS.update(fail_every_third=False, cancel_after=None, mapped=0)
    yield fx.NOTE_MIGRATION_FAULTS
    fx.NOTE_MIGRATION_FAULTS.update(fail_every_third=False, cancel_after=None, mapped=0)


def _load(target, count):
    with testing.ndb_context(target):
        testing.put_models(target, fx.notes(count))


def _texts(target) -> dict:
    client = target_lib.client(target)
    return {entity.key.name: entity['text'] for entity in client.query(kind='NoteModel').fetch()}


def _retry(store, target, original_id):
    plan = planning.plan_run(JOB, retry_of=store.get(original_id),
                             namespace=target.namespace)
    return launcher.start(plan, store, store.create(plan.job_name).run_id)


def test_a_fixed_job_finishes_over_exactly_the_items_that_failed(datastore_target, faults):
    _load(datastore_target, 30)
    store = runs.RunStore(datastore_target)
    faults['fail_every_third'] = True
    first = launcher.run_job(JOB, target=datastore_target)
    assert first.status == runs.COMPLETED and first.error_count == 10
    failed_ids = sorted(f'note-{i:03d}' for i in range(0, 30, 3))
    assert sorted(flat[1] for _, flat in before_images.failed_keys(
        first.backup['location'])) == failed_ids

    faults['fail_every_third'] = False
    retry = _retry(store, datastore_target, first.run_id)
    assert retry.status == runs.COMPLETED and retry.error_count == 0, retry.error
    assert retry.retry_of == first.run_id
    assert retry.counters['entities_read.NoteModel'] == 10
    assert list(store.output(retry.run_id))[0] == "['MIGRATED', 10]"
    assert all(text.startswith('MIGRATED ') for text in _texts(datastore_target).values())

    with pytest.raises(planning.NothingLeftError):
        _retry(store, datastore_target, retry.run_id)


def test_a_run_canceled_midway_is_finished_and_equals_one_whole_run(
        datastore_target, faults):
    _load(datastore_target, 1500)
    store = runs.RunStore(datastore_target)
    faults['cancel_after'] = 1200
    with pytest.raises(launcher.RunCanceledError):
        launcher.run_job(JOB, target=datastore_target)
    [canceled] = store.recent(1)
    assert canceled.status == runs.CANCELED and canceled.backup['state'] == 'kept'
    done = sum(text.startswith('MIGRATED ') for text in _texts(datastore_target).values())
    assert 0 < done < 1500

    faults['cancel_after'] = None
    retry = _retry(store, datastore_target, canceled.run_id)
    assert retry.status == runs.COMPLETED, retry.error
    assert retry.counters['entities_read.NoteModel'] == 1500 - done
    with testing.ndb_context(datastore_target):
        whole = {note.key.id(): 'MIGRATED ' + note.text for note in fx.notes(1500)}
    assert _texts(datastore_target) == whole
