"""What the export tests share: running a read, exporting a test's namespace."""

import base64
import datetime
import pickle
import random
import uuid

import apache_beam as beam
from google.cloud import ndb

from beam_jobs import testing
from beam_jobs.export import emulator_admin


def collect(transform: beam.PTransform, folder) -> list:
    """Runs `transform` on the local runner; returns what it yields.

    Elements leave the pipeline through a file, as results must (a list
    captured in a closure would be a pickled copy).
    """
    prefix = str(folder / f'collected-{uuid.uuid4().hex[:6]}')
    with testing.local_test_pipeline() as pipeline:
        _ = (pipeline
             | transform
             | beam.Map(lambda item: base64.b64encode(pickle.dumps(item)).decode())
             | beam.io.WriteToText(prefix))
    items = []
    for path in sorted(folder.glob(prefix.rsplit('/', 1)[1] + '*')):
        items.extend(pickle.loads(base64.b64decode(line))
                     for line in path.read_text().split())
    return items


def export_namespace(emulator, target, folder, kinds=None) -> str:
    """Exports the test's namespace (some kinds, or all) to a new folder."""
    return emulator_admin.export_from_emulator(
        emulator.host, target.project, str(folder / f'export-{uuid.uuid4().hex[:6]}'),
        kinds=kinds, namespace=target.namespace or '')


class ExportInner(ndb.Model):
    a = ndb.StringProperty()
    b = ndb.IntegerProperty(repeated=True)


class ExportFlat(ndb.Model):
    a = ndb.StringProperty()
    n = ndb.IntegerProperty()


class ExportEveryType(ndb.Model):
    s = ndb.StringProperty()
    t = ndb.TextProperty()
    i = ndb.IntegerProperty()
    f = ndb.FloatProperty()
    b = ndb.BooleanProperty()
    dt = ndb.DateTimeProperty()
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
    u = ndb.UserProperty()
    gen = ndb.GenericProperty()
    gen_unindexed = ndb.GenericProperty(indexed=False)
    gen_list = ndb.GenericProperty(repeated=True)
    st = ndb.StructuredProperty(ExportInner)
    st_list = ndb.StructuredProperty(ExportFlat, repeated=True)
    local = ndb.LocalStructuredProperty(ExportInner)
    local_list = ndb.LocalStructuredProperty(ExportInner, repeated=True)
    local_z = ndb.LocalStructuredProperty(ExportInner, compressed=True)
    local_list_z = ndb.LocalStructuredProperty(ExportInner, repeated=True,
                                               compressed=True)
    local_keyed = ndb.LocalStructuredProperty(ExportFlat, keep_keys=True)
    strings = ndb.StringProperty(repeated=True)
    ints = ndb.IntegerProperty(repeated=True)
    empty = ndb.StringProperty(repeated=True)
    nothing = ndb.StringProperty()
    big = ndb.BlobProperty()


def every_type_models(namespace=None):
    """One entity of every property type, one near 1 MiB, one empty, a child.

    In `namespace`, or the context's.
    """
    # ndb takes an explicit namespace=None as the default namespace.
    where = {} if namespace is None else {'namespace': namespace}
    rng = random.Random(7)
    full = ExportEveryType(
        id='full', **where, s='héllo wörld ✓', t='long text ünïcode 日本語 ' * 50, i=-(2 ** 62),
        f=-1.25e-300, b=True, dt=datetime.datetime(2024, 2, 29, 23, 59, 58, 999999),
        d=datetime.date(1969, 7, 20), tm=datetime.time(4, 5, 6, 7),
        blob=b'\x00\xff\x80raw', blob_indexed=b'indexed bytes',
        blob_z=b'compress me ' * 100, blobs_z=[b'one' * 50, b'two' * 50],
        j={'a': [1, 'x', None, {'deep': True}]}, p={'set': {1, 2}, 'tuple': (3, 'é')},
        k=ndb.Key('Other', 5, 'Child', 'c'),
        keys=[ndb.Key('Other', 1), ndb.Key('Other', 'two', namespace='elsewhere')],
        g=ndb.GeoPt(52.37, -4.89), u=ndb.User(email='a@example.com', _auth_domain='example.com'),
        gen='generic', gen_unindexed=42, gen_list=[1, 'two', 3.5, False, b'bytes'],
        st=ExportInner(a='x', b=[1, 2]),
        st_list=[ExportFlat(a='y', n=3), ExportFlat(a='z')],
        local=ExportInner(a='l', b=[9]),
        local_list=[ExportInner(a='l1'), ExportInner(a='l2', b=[1])],
        local_z=ExportInner(a='c', b=[5]),
        local_list_z=[ExportInner(a='c1'), ExportInner(a='c2', b=[2])],
        local_keyed=ExportFlat(id='kept', a='with key', n=1),
        strings=['a', 'ü', ''], ints=[3, 1, 2], empty=[], nothing=None)
    # Near the 1 MiB entity limit: one record spans some 30 blocks.
    large = ExportEveryType(id='large', **where, big=rng.randbytes(1_000_000), s='large')
    sparse = ExportEveryType(id=7, **where)     # every property unset, an integer id
    parent = ExportInner(id='parent', a='p', **where)
    child = ExportInner(parent=parent.key, id=3, a='child')
    return [full, large, sparse, parent, child]
