"""The models the map step hands to `map` equal what `Model.get()` returns.

A Datastore read hands the map step entity protobufs, which
`lean_models.ModelBuilder` turns into models itself for the common property
types and through ndb's own decoding for the rest; an export read hands it
Beam entities, which `entities_lib.to_model` decodes through ndb. Both must give
exactly the model `Model.get()` gives, for every ndb property type, and keys
that are cheap to read (`lean_models.FlatKey`). Also: an entity that cannot be
decoded becoming an error line. (The ndb context the map step keeps current:
tests/test_ndb_context.py.)
"""

import copy
import datetime
import pickle
import random
import zlib

import pytest
from apache_beam.testing.util import assert_that, equal_to
from google.cloud import datastore as datastore_client
from google.cloud import ndb

from beam_jobs import RunJob, jobs, lean_models, testing
from beam_jobs import entities as entities_lib
from beam_jobs import target as target_lib
from beam_jobs.export import ReadExport
from beam_jobs.io import datastore_read
from beam_jobs.export.decode import ExportEntity
from tests import export_helpers

ExportEveryType = export_helpers.ExportEveryType
ExportInner = export_helpers.ExportInner


class FastEveryType(ndb.Model):
    """Every property type the lean builder decodes without ndb's help."""

    s = ndb.StringProperty()
    t = ndb.TextProperty()
    t_z = ndb.TextProperty(compressed=True)
    i = ndb.IntegerProperty()
    f = ndb.FloatProperty()
    b = ndb.BooleanProperty()
    dt = ndb.DateTimeProperty()
    dt_tz = ndb.DateTimeProperty(tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    d = ndb.DateProperty()
    tm = ndb.TimeProperty()
    blob = ndb.BlobProperty()
    blob_indexed = ndb.BlobProperty(indexed=True)
    blob_z = ndb.BlobProperty(compressed=True)
    blobs_z = ndb.BlobProperty(compressed=True, repeated=True)
    j = ndb.JsonProperty()
    p = ndb.PickleProperty()
    k = ndb.KeyProperty()
    keys = ndb.KeyProperty(repeated=True)
    g = ndb.GeoPtProperty()
    gen = ndb.GenericProperty()
    gen_unindexed = ndb.GenericProperty(indexed=False)
    gen_list = ndb.GenericProperty(repeated=True)
    strings = ndb.StringProperty(repeated=True)
    ints = ndb.IntegerProperty(repeated=True)
    dts = ndb.DateTimeProperty(repeated=True)
    empty = ndb.StringProperty(repeated=True)
    nothing = ndb.StringProperty()
    renamed = ndb.StringProperty(name='stored_as')
    big = ndb.BlobProperty()


def fast_models(namespace=None):
    """One of every value, none at all, a large one, an integer id, a child."""
    where = {} if namespace is None else {'namespace': namespace}
    rng = random.Random(11)
    full = FastEveryType(
        id='full', **where, s='héllo wörld ✓', t='long ünïcode 日本語 ' * 40,
        t_z='squeeze ' * 200, i=-(2 ** 63), f=float('inf'), b=False,
        dt=datetime.datetime(1900, 1, 1, 0, 0, 0, 1),
        dt_tz=datetime.datetime(2024, 6, 1, 12, 0, tzinfo=datetime.timezone.utc),
        d=datetime.date(2100, 12, 31), tm=datetime.time(23, 59, 59, 999999),
        blob=b'\x00\xff', blob_indexed=b'ix', blob_z=b'zz' * 500,
        blobs_z=[b'a' * 40, b'', b'b' * 40], j=[{'é': None}, 1.5, 'x'],
        p={'frozen': frozenset({1}), 'when': datetime.date(2020, 1, 1)},
        k=ndb.Key('Other', 'x', 'Leaf', 2),
        keys=[ndb.Key('Other', 9), ndb.Key('Other', 'y', namespace='elsewhere')],
        g=ndb.GeoPt(-33.9, 151.2), gen=b'raw bytes', gen_unindexed=2.5,
        gen_list=['two', 3, True, datetime.datetime(2020, 2, 2),
                  ndb.Key('Other', 4), ndb.GeoPt(1, 2)],
        strings=['', 'ü', 'z' * 1500], ints=[0, -1, 2 ** 40],
        dts=[datetime.datetime(2001, 1, 1), datetime.datetime(1999, 12, 31, 23)],
        empty=[], nothing=None, renamed='stored under another name')
    large = FastEveryType(id='large', **where, big=rng.randbytes(1_000_000),
                          s='large')
    sparse = FastEveryType(id=42, **where)
    parent = FastEveryType(id='parent', **where, s='p')
    child = FastEveryType(parent=parent.key, id=7, s='child', i=1)
    return [full, large, sparse, parent, child]


KINDS = [FastEveryType, ExportEveryType, ExportInner]
CLASSES = {model._get_kind(): model for model in KINDS}


def _ReadKinds(target, shards=3):   # pylint: disable=invalid-name
    """The framework's own Datastore read of every kind."""
    return datastore_read.ReadKinds(list(CLASSES), target, shards)


def _put_every_type(target):
    with testing.ndb_context(target):
        models = fast_models() + export_helpers.every_type_models()
        ndb.put_multi(models)
    return models


def _stored(model):
    return model.key.get(use_cache=False, use_global_cache=False)


def _same_as_stored(model, stored, same_types=True):
    """`model` equals `stored`, value by value (and type by type)."""
    assert model == stored, model.key
    assert type(model.key) is ndb.Key and model.key == stored.key
    assert isinstance(model.key._key, lean_models.FlatKey), model.key
    for prop in type(stored)._properties.values():
        mine, theirs = prop._get_value(model), prop._get_value(stored)
        assert mine == theirs, (model.key, prop._name)
        if same_types:
            assert _described(mine) == _described(theirs), (model.key, prop._name)


def _described(value):
    """A value's type and repr, element by element for a list."""
    if isinstance(value, list):
        return [_described(item) for item in value]
    has_repr = type(value).__repr__ is not object.__repr__
    return type(value), repr(value) if has_repr else vars(value)


@pytest.fixture
def slow_builds(monkeypatch):
    """The kinds and ids of the entities that went through ndb's decoding."""
    slow = []
    original = lean_models.ModelBuilder.slow

    def counting(self, entity_pb):
        model = original(self, entity_pb)
        slow.append((model.key.kind(), model.key.id()))
        return model
    monkeypatch.setattr(lean_models.ModelBuilder, 'slow', counting)
    return slow


def test_every_property_type_read_from_the_datastore_is_model_get(
        datastore_target, tmp_path, slow_builds):
    models = _put_every_type(datastore_target)
    entities = export_helpers.collect(_ReadKinds(datastore_target), tmp_path)
    assert all(isinstance(e, lean_models.EntityPb) for e in entities)
    assert sorted(entities_lib.key_path(e.key) for e in entities) == sorted(
        entities_lib.key_path(m.key) for m in models)
    with testing.ndb_context(datastore_target):
        built = [(entity, entities_lib.to_model(
            entity, CLASSES[entities_lib.kind_of_entity(entity)])) for entity in entities]
        # Only the model with embedded entities (structured, local structured
        # and user properties) needed ndb's own decoding.
        assert slow_builds == [('ExportEveryType', 'full')]
        for entity, model in built:
            _same_as_stored(model, _stored(model))
            # A fast-built model, once read, is what ndb would have built.
            assert model == lean_models.ModelBuilder(type(model)).slow(entity.pb)


def test_every_property_type_read_from_an_export_is_model_get(
        datastore_emulator, datastore_target, tmp_path):
    models = _put_every_type(datastore_target)
    path = export_helpers.export_namespace(datastore_emulator, datastore_target,
                                           tmp_path, kinds=list(CLASSES))
    entities = export_helpers.collect(
        ReadExport(path, KINDS, namespace=datastore_target.namespace), tmp_path)
    assert all(isinstance(e, ExportEntity) for e in entities)
    assert len(entities) == len(models)
    with testing.ndb_context(datastore_target):
        for entity in entities:
            model = entities_lib.to_model(entity, CLASSES[entities_lib.kind_of_entity(entity)])
            # An export gives plain UTC datetimes where the Datastore gives
            # DatetimeWithNanoseconds: equal values, so no type check.
            _same_as_stored(model, _stored(model), same_types=False)


class CompareWithGetJob(jobs.BaseMapReduceOneOffJobManager):
    """Checks, inside `map`, the model it gets against `Model.get()`."""

    @classmethod
    def entity_classes_to_map_over(cls):
        return KINDS

    @staticmethod
    def map(item):
        stored = item.key.get(use_cache=False, use_global_cache=False)
        same = item == stored and all(
            type(prop._get_value(item)) is type(prop._get_value(stored))
            for prop in type(item)._properties.values())
        yield ('same' if same else 'DIFFERENT', '%s %s' % (item.key.kind(), item.key.id()))

    @staticmethod
    def reduce(key, values):
        yield (key, sorted(values))


def _expected_ids(models):
    return sorted('%s %s' % (model.key.kind(), model.key.id()) for model in models)


def test_map_gets_model_get_models_through_the_datastore_read(datastore_target):
    models = _put_every_type(datastore_target)
    with testing.local_test_pipeline() as pipeline:
        lines = pipeline | RunJob(CompareWithGetJob, shard_count=2,
                                  project=datastore_target.project,
                                  namespace=datastore_target.namespace)
        assert_that(lines, equal_to([str(['same', _expected_ids(models)])]))


def test_map_gets_equal_models_through_an_export(datastore_emulator,
                                                 datastore_target, tmp_path):
    models = _put_every_type(datastore_target)
    path = export_helpers.export_namespace(datastore_emulator, datastore_target,
                                           tmp_path, kinds=list(CLASSES))

    class ExportCompareJob(CompareWithGetJob):
        @staticmethod
        def map(item):
            stored = item.key.get(use_cache=False, use_global_cache=False)
            yield ('same' if item == stored else 'DIFFERENT',
                   '%s %s' % (item.key.kind(), item.key.id()))
    with testing.local_test_pipeline() as pipeline:
        lines = pipeline | RunJob(ExportCompareJob, project=datastore_target.project,
                                  namespace=datastore_target.namespace, export=path)
        assert_that(lines, equal_to([str(['same', _expected_ids(models)])]))


class KeyJob(jobs.BaseMapReduceOneOffJobManager):
    """What legacy jobs read of a key."""

    @classmethod
    def entity_classes_to_map_over(cls):
        return [FastEveryType]

    @staticmethod
    def map(item):
        key = item.key
        parent = key.parent()
        yield (str(key.id()), repr((key.id(), key.string_id(), key.integer_id(),
                                   key.kind(), key.flat(), key.pairs(),
                                   parent.id() if parent else None,
                                   key.namespace() is not None, key.urlsafe())))

    @staticmethod
    def reduce(key, values):
        yield (key, values)


def test_keys_read_the_same_in_map(datastore_target):
    models = _put_every_type(datastore_target)
    with testing.ndb_context(datastore_target):
        expected = [str([key, [value]]) for model in models
                    if isinstance(model, FastEveryType)
                    for key, value in KeyJob.map(_stored(model))]
    with testing.local_test_pipeline() as pipeline:
        lines = pipeline | RunJob(KeyJob, project=datastore_target.project,
                                  namespace=datastore_target.namespace)
        assert_that(lines, equal_to(expected))


# Entities ndb itself cannot decode: an error line each, the rest mapped.

class NoteModel(ndb.Model):
    text = ndb.StringProperty()
    score = ndb.IntegerProperty(repeated=True)


class NoteJob(jobs.BaseMapReduceOneOffJobManager):

    @classmethod
    def entity_classes_to_map_over(cls):
        return [NoteModel]

    @staticmethod
    def map(item):
        yield ('text', item.text)

    @staticmethod
    def reduce(key, values):
        yield (key, sorted(values))


def test_an_entity_that_cannot_be_decoded_is_an_error_line(datastore_target):
    client = datastore_client.Client(project=datastore_target.project,
                                     namespace=datastore_target.namespace)
    good = datastore_client.Entity(client.key('NoteModel', 'good'))
    good.update({'text': 'fine', 'score': [1, 2]})
    # A list where the model wants one value: ndb's read refuses it.
    bad = datastore_client.Entity(client.key('NoteModel', 'bad'))
    bad.update({'text': ['one', 'two']})
    client.put_multi([good, bad])
    with testing.ndb_context(datastore_target):
        with pytest.raises(TypeError) as raised:
            ndb.Key('NoteModel', 'bad').get(use_cache=False, use_global_cache=False)
    expected_error = f'ERROR in map for NoteModel/bad: TypeError: {raised.value}'

    def check(lines):
        assert "['text', ['fine']]" in lines, lines
        errors = [line for line in lines if line.startswith('ERROR')]
        assert len(errors) == 1 and len(lines) == 2, lines
        assert errors[0].startswith(expected_error), errors
    with testing.local_test_pipeline() as pipeline:
        assert_that(pipeline | RunJob(NoteJob, project=datastore_target.project,
                                      namespace=datastore_target.namespace), check)


def test_unusual_stored_values_fall_back_to_ndb(datastore_target, slow_builds):
    """A meaning on an uncompressed blob, a property the model lacks, a
    dotted legacy name: decoded as ndb decodes them."""

    class Odd(ndb.Model):
        blob = ndb.BlobProperty()
        text = ndb.StringProperty()

    client = datastore_client.Client(project=datastore_target.project,
                                     namespace=datastore_target.namespace)
    squeezed = datastore_client.Entity(client.key('Odd', 'z'),
                                       exclude_from_indexes=('blob',))
    squeezed['blob'] = zlib.compress(b'data' * 50)
    squeezed._meanings['blob'] = (22, squeezed['blob'])
    unknown = datastore_client.Entity(client.key('Odd', 'u'))
    unknown.update({'text': 'kept', 'gone': 'ignored'})
    dotted = datastore_client.Entity(client.key('Odd', 'd'))
    dotted.update({'text': 'kept', 'old.sub': 1})
    client.put_multi([squeezed, unknown, dotted])
    entities = [lean_models.EntityPb(pb) for pb in _pbs(datastore_target, 'Odd')]
    with testing.ndb_context(datastore_target):
        for entity in entities:
            model = entities_lib.to_model(entity, Odd)
            assert model == _stored(model)
            assert isinstance(model.key._key, lean_models.FlatKey)
        by_id = {e.key.path[-1].name: entities_lib.to_model(e, Odd) for e in entities}
    assert by_id['z'].blob == b'data' * 50
    assert by_id['u'].text == 'kept'
    # A name the model lacks is ignored here as by ndb; a dotted one (a
    # legacy structured property, for all the builder knows) is ndb's.
    assert set(slow_builds) == {('Odd', 'z'), ('Odd', 'd')}


def _pbs(target, kind):
    key_range = datastore_read.KeyRange(
        datastore_read.KindQuery(kind, target.project, target.namespace), 0)
    return [pb for page in datastore_read.read_pages(target_lib.client(target), key_range)
            for pb in page]


# Keys.

@pytest.mark.parametrize('path', [
    ('A', 'name'), ('A', 7), ('A', 'p', 'B', 3), ('A', 1, 'B', 'leaf'), ('A',),
    ('A', 'p', 'B')])
def test_flat_keys_read_as_keys(path):
    plain = datastore_client.Key(*path, project='p', namespace='ns')
    flat = copy.copy(plain)
    lean_models.make_flat(flat)
    assert type(flat) is lean_models.FlatKey
    for name in ('kind', 'id', 'name', 'id_or_name', 'is_partial', 'flat_path',
                 'path', 'project', 'namespace', 'database'):
        assert getattr(flat, name) == getattr(plain, name), name
    assert flat == plain or plain.is_partial
    assert hash(flat) == hash(plain)
    assert (flat.parent == plain.parent) or plain.parent is None
    if plain.is_partial:
        assert flat.completed_key(5).id == 5 and flat.id is None
    assert pickle.loads(pickle.dumps(flat)) == flat or plain.is_partial
    ndb_key = ndb.Key._from_ds_key(flat)
    assert ndb_key.flat() == ndb.Key._from_ds_key(plain).flat()
    assert ndb_key.id() == plain.id_or_name


def test_key_from_a_protobuf_is_the_client_s():
    from google.cloud.datastore import helpers
    for key in (datastore_client.Key('A', 'x', 'B', 2, project='p', namespace='n'),
                datastore_client.Key('A', 5, project='p'),
                datastore_client.Key('A', project='p', namespace='n')):
        pb = key.to_protobuf()._pb
        lean = lean_models.key_from_pb(pb)
        client = helpers.key_from_protobuf(pb)
        assert (lean.flat_path, lean.path, lean.project, lean.namespace,
                lean.database) == (client.flat_path, client.path, client.project,
                                   client.namespace, client.database)


def test_export_entities_of_common_types_take_the_lean_path(tmp_path):
    """An export read's Beam entities are built without ndb's own decoding
    when their properties are of the common types, into the same models."""
    from beam_jobs.export import write_export
    from pipelines import sample_data
    from pipelines.models import exp_models
    target = target_lib.Target('lean-export')
    with testing.ndb_context(target):
        path = write_export(sample_data.explorations(40), str(tmp_path / 'x'),
                            project=target.project)
    entities = export_helpers.collect(
        ReadExport(path, [exp_models.ExplorationModel]), tmp_path)
    builder = lean_models.ModelBuilder(exp_models.ExplorationModel)
    with testing.ndb_context(target):
        for entity in entities:
            lean = builder._build_values(entity)  # pylint: disable=protected-access
            assert lean == builder.slow_entity(entity)
            assert type(lean.key._key) is lean_models.FlatKey  # pylint: disable=protected-access
            assert lean.id == entity.key.path_elements[-1]
