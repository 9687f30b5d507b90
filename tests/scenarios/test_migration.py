"""Jobs that write: dry run first, then the real run, then a rerun."""


from beam_jobs import testing
from beam_jobs.lifecycle import launcher
from beam_jobs.records import runs
from pipelines import exp_jobs_one_off, sample_data
from tests import job_fixtures as fx


def _snapshot(target, *models):
    with testing.ndb_context(target):
        return {model.__name__: sorted(
            (entity.key.id(), repr(sorted(entity.to_dict().items())))
            for entity in model.query().fetch()) for model in models}


def _write_lines(lines):
    return sorted(line for line in lines if line.startswith(('DRY RUN', 'WRITES')))


def test_dry_run_writes_nothing_and_the_real_run_writes_what_it_reported(datastore_target):
    with testing.ndb_context(datastore_target):
        testing.put_models(datastore_target, fx.notes(9, deleted_every=3))
    store = runs.RunStore(datastore_target)
    before = _snapshot(datastore_target, fx.NoteModel, fx.TagModel)

    dry = launcher.run_job(fx.TopicTagMigrationJob, params={'dry_run': True},
                           target=datastore_target)
    assert dry.status == runs.COMPLETED
    assert _snapshot(datastore_target, fx.NoteModel, fx.TagModel) == before
    assert _write_lines(store.output(dry.run_id)) == [
        'DRY RUN: would delete 3 NoteModel (nothing was written)',
        'DRY RUN: would put 6 TagModel (nothing was written)']
    assert dry.counters['puts.TagModel'] == 6
    assert dry.counters['deletes.NoteModel'] == 3

    real = launcher.run_job(fx.TopicTagMigrationJob, target=datastore_target)
    assert real.status == runs.COMPLETED
    assert _write_lines(store.output(real.run_id)) == [
        'WRITES: delete 3 NoteModel', 'WRITES: put 6 TagModel']
    after = _snapshot(datastore_target, fx.NoteModel, fx.TagModel)
    assert len(after['NoteModel']) == 9 - 3
    assert len(after['TagModel']) == 6
    with testing.ndb_context(datastore_target):
        assert fx.TagModel.get_by_id('tag-note-001').name == 'art'
        assert fx.NoteModel.get_by_id('note-000') is None

    rerun = launcher.run_job(fx.TopicTagMigrationJob, target=datastore_target)
    assert rerun.status == runs.COMPLETED
    assert _snapshot(datastore_target, fx.NoteModel, fx.TagModel) == after


def test_content_migration_on_sample_data(datastore_target):
    sample_data.load(60, datastore_target)
    job = exp_jobs_one_off.ExplorationContentMigrationOneOffJob
    store = runs.RunStore(datastore_target)
    dry = launcher.run_job(job, params={'dry_run': True}, target=datastore_target)
    dry_lines = store.output(dry.run_id)
    # 60 explorations: ids divisible by 31 are deleted, by 3 are on schema v1.
    assert "['MIGRATED', 20]" in dry_lines
    assert 'DRY RUN: would put 20 ExplorationModel (nothing was written)' in dry_lines

    real = launcher.run_job(job, target=datastore_target)
    real_lines = store.output(real.run_id)
    assert "['MIGRATED', 20]" in real_lines
    assert 'WRITES: put 20 ExplorationModel' in real_lines
    with testing.ndb_context(datastore_target):
        versions = {m.states_schema_version for m in
                    sample_data.exp_models.ExplorationModel.query() if not m.deleted}
    assert versions == {2}

    rerun = launcher.run_job(job, target=datastore_target)
    rerun_lines = store.output(rerun.run_id)
    assert "['ALREADY_MIGRATED', 59]" in rerun_lines
    assert not [line for line in rerun_lines if line.startswith('WRITES')]


def test_migration_failure_names_the_exploration(datastore_target):
    sample_data.load(1000, datastore_target)   # exp-000999 has broken content
    job = exp_jobs_one_off.ExplorationContentMigrationOneOffJob
    record = launcher.run_job(job, params={'dry_run': True}, target=datastore_target)
    assert record.error_count == 1
    [error] = [line for line in runs.RunStore(datastore_target).output(record.run_id)
               if line.startswith('ERROR')]
    assert error.startswith('ERROR in map for ExplorationModel/exp-000999: ValueError: '
                            "state 'Question 1' has content of type int")




def test_writing_more_than_one_commit_can_carry(datastore_target):
    # 900 pages of 12 KB: Beam's sink grows its batches to 500 entities
    # (6 MB), past the 4 MiB the emulator takes in one request.
    with testing.ndb_context(datastore_target):
        testing.put_models(datastore_target, fx.notes(900))
    record = launcher.run_job(fx.BigPagesJob, target=datastore_target)
    assert record.status == runs.COMPLETED, record.error
    assert record.counters['puts.PageModel'] == 900
    with testing.ndb_context(datastore_target):
        assert fx.PageModel.query().count() == 900
