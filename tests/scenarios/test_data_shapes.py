"""Production-shaped data on every path: renamed kinds, namespaces, properties
a model no longer declares, entities up to the Datastore's 1 MiB, several
kinds streamed by one read. Against the real emulator."""

import pytest
from apache_beam.portability import common_urns
from google.cloud import datastore, ndb

from beam_jobs import jobs, lean_models, testing
from beam_jobs import target as target_lib
from beam_jobs.lifecycle import backend, launcher, planning
from beam_jobs.records import rehearsals as rehearsal_records
from beam_jobs.records import runs
from beam_jobs.rehearsal import rehearse as rehearse_lib
from tests import console_helpers
from tests import export_helpers
from tests import job_fixtures as fx


class RenamedNote(ndb.Model):
    """Stored as kind `LegacyNote`: the class was renamed, the kind kept."""

    text = ndb.StringProperty()

    @classmethod
    def _get_kind(cls):
        return 'LegacyNote'


class LeanNote(ndb.Model):
    """Production's entities still carry properties this model dropped."""

    text = ndb.StringProperty()


class ShapesJob(jobs.BaseMapReduceOneOffJobManager):

    @classmethod
    def entity_classes_to_map_over(cls):
        return [RenamedNote, LeanNote]

    @staticmethod
    def map(item):
        yield (type(item).__name__, f'{item.key.id()}:{item.text}')

    @staticmethod
    def reduce(key, values):
        yield (key, sorted(values))


class UpperRenamedJob(jobs.BaseMapReduceOneOffJobManager):
    """Rewrites the renamed kind (a migration of production-shaped data)."""

    @classmethod
    def entity_classes_to_map_over(cls):
        return [RenamedNote]

    @staticmethod
    def map(item):
        item.text = item.text.upper()
        yield jobs.Put(item)
        yield ('done', 1)

    @staticmethod
    def reduce(key, values):
        yield (key, len(values))


class BigText(ndb.Model):
    text = ndb.TextProperty()


class BigTextJob(jobs.BaseMapReduceOneOffJobManager):

    @classmethod
    def entity_classes_to_map_over(cls):
        return [BigText]

    @staticmethod
    def map(item):
        yield ('bytes', len(item.text))

    @staticmethod
    def reduce(key, values):
        yield (key, sorted(set(values)), len(values))


def _leftovers(client, key, text):
    entity = datastore.Entity(key, exclude_from_indexes=('old_text',))
    entity.update({'text': text, 'old_flag': True, 'old_list': [1, 2, 3],
                   'old_text': 'y' * 2000, 'old_key': client.key('Gone', 7),
                   'old_time': None})
    return entity


@pytest.fixture
def shaped(datastore_target):
    """Entities of a renamed kind and of a model that lost properties, in the
    test's namespace, written as production holds them (not through ndb)."""
    client = target_lib.client(datastore_target)
    client.put_multi([_leftovers(client, client.key('LegacyNote', f'l{i}'), f'legacy {i}')
                      for i in range(5)]
                     + [_leftovers(client, client.key('LeanNote', f'n{i}'), f'lean {i}')
                        for i in range(4)])
    return datastore_target


EXPECTED = [
    "['LeanNote', ['n0:lean 0', 'n1:lean 1', 'n2:lean 2', 'n3:lean 3']]",
    "['RenamedNote', ['l0:legacy 0', 'l1:legacy 1', 'l2:legacy 2', 'l3:legacy 3', "
    "'l4:legacy 4']]",
]


def _slow_builds(monkeypatch) -> list:
    calls = []
    for name in ('slow', 'slow_entity'):
        original = getattr(lean_models.ModelBuilder, name)

        def counting(self, entity, original=original):
            calls.append(entity)
            return original(self, entity)
        monkeypatch.setattr(lean_models.ModelBuilder, name, counting)
    return calls


def test_from_the_datastore(shaped, monkeypatch):
    slow = _slow_builds(monkeypatch)
    record = launcher.run_job(ShapesJob, target=shaped, shard_count=3)
    assert record.status == runs.COMPLETED, record.error
    assert runs.RunStore(shaped).output(record.run_id) == EXPECTED
    assert record.counters['entities_read.LegacyNote'] == 5
    # Leftovers and a renamed kind keep to the lean path, as ndb ignores them.
    assert slow == []


def test_from_an_export(shaped, datastore_emulator, tmp_path):
    export = export_helpers.export_namespace(datastore_emulator, shaped, tmp_path,
                                             kinds=['LegacyNote', 'LeanNote'])
    record = launcher.run_job(ShapesJob, target=shaped, export=export)
    assert record.status == runs.COMPLETED, record.error
    assert runs.RunStore(shaped).output(record.run_id) == EXPECTED
    assert record.source['entities'] == {'LegacyNote': 5, 'LeanNote': 4}


def test_through_a_rehearsals_after_state(shaped, datastore_emulator, tmp_path):
    export = export_helpers.export_namespace(datastore_emulator, shaped, tmp_path,
                                             kinds=['LegacyNote', 'LeanNote'])
    store = runs.RunStore(shaped)
    planned = rehearse_lib.plan(UpperRenamedJob, export, verify=[ShapesJob],
                                namespace=shaped.namespace)
    record = rehearse_lib.rehearse(planned, store, say=lambda line: None)
    assert record.verdict == rehearsal_records.PASSED, record.reasons
    assert record.writes == {'put': {'LegacyNote': 5}, 'delete': {}}
    after = launcher.run_job(ShapesJob, target=shaped, export=record.after_state)
    assert store.output(after.run_id)[1] == (
        "['RenamedNote', ['l0:LEGACY 0', 'l1:LEGACY 1', 'l2:LEGACY 2', "
        "'l3:LEGACY 3', 'l4:LEGACY 4']]")


def _producer_of_map_input(pipeline) -> str:
    proto = pipeline.to_runner_api()
    transforms = proto.components.transforms
    [map_step] = [t for t in transforms.values() if t.unique_name.endswith('/Steps/Map')]
    [map_input] = [pc for tag, pc in map_step.inputs.items()]
    [producer] = [t for t in transforms.values()
                  if map_input in t.outputs.values() and not t.subtransforms]
    return producer.unique_name, producer.spec.urn


@pytest.mark.parametrize('source', ['datastore', 'export', 'after_state'])
def test_several_kinds_stream_into_the_map_step(shaped, datastore_emulator, tmp_path,
                                                source):
    """No Flatten of reads ahead of the map step: Beam's local runner would
    hold every entity of every kind between the two."""
    export = after = None
    if source != 'datastore':
        export = export_helpers.export_namespace(datastore_emulator, shaped, tmp_path,
                                                 kinds=['LegacyNote', 'LeanNote'])
    if source == 'after_state':
        planned = rehearse_lib.plan(UpperRenamedJob, export, namespace=shaped.namespace)
        after = rehearse_lib.rehearse(planned, runs.RunStore(shaped),
                                      say=lambda line: None).after_state
    plan = planning.plan_run(ShapesJob, export=after or export)
    name, urn = _producer_of_map_input(backend.build_pipeline(plan, 'r', shaped, 0))
    assert urn != common_urns.primitives.FLATTEN.urn, name
    assert name.startswith('RunJob ShapesJob/Read ')


def test_a_kind_of_one_mib_entities(datastore_target):
    size = 1_000_000   # the Datastore takes entities of up to 1,048,572 bytes
    with testing.ndb_context(datastore_target):
        for i in range(12):   # one a request: the emulator takes 4 MiB a request
            BigText(id=f'big-{i}', text='z' * size).put()
    record = launcher.run_job(BigTextJob, target=datastore_target, shard_count=2)
    assert record.status == runs.COMPLETED, record.error
    assert runs.RunStore(datastore_target).output(record.run_id) == [
        f"['bytes', ['{size}'], 12]"]


def test_records_with_large_fields_list_and_show(datastore_target):
    """A page of run records (or rehearsal records) can be far over 4 MiB."""
    store = runs.RunStore(datastore_target)
    for _ in range(7):
        run_id = store.create('TopicCountJob').run_id
        store.transition(run_id, runs.FAILED, error='e' * 900_000)
    assert len(store.recent(20)) == 7
    rehearsals = rehearsal_records.RehearsalStore(datastore_target)
    for _ in range(6):
        rehearsals.create('TopicCountJob', reasons=['r' * 900_000])
    assert len(rehearsals.recent(20)) == 6
    with console_helpers.client(datastore_target) as client:
        assert len(client.get('/api/runs').json()['runs']) == 7
        assert client.get('/runs').status_code == 200
        assert len(client.get('/api/rehearsals').json()['rehearsals']) == 6
        assert client.get('/rehearsals').status_code == 200


def test_fixture_kinds_are_not_confused(datastore_target):
    """TwoKindsJob's two kinds, in one namespace, each read once."""
    with testing.ndb_context(datastore_target):
        testing.put_models(datastore_target, fx.notes(3) + [fx.TagModel(id='t1', name='x')])
    record = launcher.run_job(fx.TwoKindsJob, target=datastore_target)
    assert record.counters['entities_read.NoteModel'] == 3
    assert record.counters['entities_read.TagModel'] == 1
