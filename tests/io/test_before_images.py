"""Before-images: every write a run makes is kept, and put back by a revert."""

from beam_jobs import target as target_lib
from beam_jobs import testing
from beam_jobs.io import before_images
from beam_jobs.lifecycle import launcher
from beam_jobs.lifecycle import revert as revert_lib
from beam_jobs.records import runs
from tests import job_fixtures as fx


def _state(target):
    client = target_lib.client(target)
    found = {}
    for kind in ('NoteModel', 'TagModel'):
        for entity in client.query(kind=kind).fetch():
            found[(kind, entity.key.id_or_name)] = before_images.digest(entity)
    return found


def _revert(store, run_id, **flags):
    plan = revert_lib.plan_revert(store, run_id, job_lookup=lambda name: fx.TopicTagMigrationJob,
                                  **flags)
    record = store.create(plan.job_name)
    return launcher.start(plan, store, record.run_id)


def test_a_migration_keeps_before_images_and_a_revert_puts_them_back(datastore_target):
    with testing.ndb_context(datastore_target):
        testing.put_models(datastore_target, fx.notes(9, deleted_every=3))
    store = runs.RunStore(datastore_target)
    before = _state(datastore_target)
    run = launcher.run_job(fx.TopicTagMigrationJob, target=datastore_target)
    assert run.status == runs.COMPLETED, run.error
    assert run.backup['state'] == 'kept', run.backup
    assert run.backup['writes'] == 9
    assert run.backup['kinds']['NoteModel']['delete'] == 3
    after = _state(datastore_target)
    assert after != before

    reverted = _revert(store, run.run_id)
    assert reverted.status == runs.COMPLETED, reverted.error
    assert reverted.revert_of == run.run_id
    assert _state(datastore_target) == before
    print(list(store.output(reverted.run_id)))

    again = _revert(store, reverted.run_id)
    assert again.status == runs.COMPLETED, again.error
    assert _state(datastore_target) == after


def test_a_retried_bundle_keeps_the_first_before_image_and_the_last_write(tmp_path):
    """A runner that retries a bundle writes its chunk again; the second
    attempt read what the first had written, so the true before-image is
    the first chunk's, and what the run left there is the last one's."""
    from apache_beam.io.gcp.datastore.v1new import types as beam_types
    key = beam_types.Key(['NoteModel', 'note-1'], project='p', namespace='ns')

    def entity(text):
        made = beam_types.Entity(key)
        made.set_properties({'text': text})
        return made
    original, first_write, second_write = entity('a'), entity('b'), entity('c')
    location = str(tmp_path / 'backup')
    write = ('put', 'NoteModel', first_write)
    before_images.write_chunk(location, [write], [original],
                              [before_images.digest(first_write)], [None])
    retried = ('put', 'NoteModel', second_write)
    before_images.write_chunk(location, [retried], [first_write],
                              [before_images.digest(second_write)], [None])
    manifest = before_images.finish(location, 'Run-1', 'NoteJob', 'p', 'ns', 'completed')
    assert manifest.writes == 2 and manifest.kinds['NoteModel']['put'] == 2
    chunks = before_images.verify(manifest)
    [(first, last)] = before_images.resolve(chunks).values()
    images = before_images.chunk_images(location, chunks[0])
    [folder] = images
    image = before_images.decode_image(images[folder][first.image[1]], 'p')
    assert image['text'] == 'a'
    assert last.wrote == before_images.digest(second_write) != before_images.digest(original)
    # The backup reads as an export: its metadata names the before-images.
    assert manifest.export.endswith('.overall_export_metadata')


def test_digests_compare_content_not_encoding():
    from apache_beam.io.gcp.datastore.v1new import types as beam_types
    key = beam_types.Key(['NoteModel', 5], project='p')
    indexed = beam_types.Entity(key)
    indexed.set_properties({'text': 'x', 'n': 1})
    unindexed = beam_types.Entity(key, exclude_from_indexes=('text',))
    unindexed.set_properties({'n': 1, 'text': 'x'})
    assert before_images.digest(indexed) == before_images.digest(unindexed)
    changed = beam_types.Entity(key)
    changed.set_properties({'text': 'x', 'n': 2})
    assert before_images.digest(changed) != before_images.digest(indexed)
    assert before_images.digest(None) == before_images.ABSENT
