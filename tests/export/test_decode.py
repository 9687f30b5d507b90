"""Every ndb property type survives the emulator's export and ReadExport.

Models are put into the real emulator, exported by it, read back with
ReadExport in a local pipeline and turned into models with
`entities_lib.to_model`: each must equal what `Model.get()` returns, and each
Beam entity must equal what Beam's own Datastore read yields.
"""

import zlib

import apache_beam as beam
from apache_beam.io.gcp.datastore.v1new import datastoreio
from apache_beam.io.gcp.datastore.v1new import types as beam_types
from google.cloud import datastore as datastore_client
from google.cloud import ndb

from beam_jobs import testing
from beam_jobs import entities as entities_lib
from beam_jobs.export import ReadExport
from beam_jobs.export import decode, encode
from tests import export_helpers


ExportEveryType = export_helpers.ExportEveryType
KINDS = [ExportEveryType, export_helpers.ExportInner]


def test_every_property_type_reads_back_as_model_get(datastore_emulator,
                                                     datastore_target, tmp_path):
    with testing.ndb_context(datastore_target):
        models = export_helpers.every_type_models()
        ndb.put_multi(models)
    path = export_helpers.export_namespace(datastore_emulator, datastore_target,
                                           tmp_path, kinds=[m._get_kind() for m in KINDS])

    entities = export_helpers.collect(
        ReadExport(path, KINDS, namespace=datastore_target.namespace), tmp_path)
    assert sorted(str(e.key.path_elements) for e in entities) == sorted(
        str(m.key.flat()) for m in models)
    classes = {model._get_kind(): model for model in KINDS}
    with testing.ndb_context(datastore_target):
        for entity in entities:
            model = entities_lib.to_model(entity, classes[entity.key.path_elements[-2]])
            stored = model.key.get(use_cache=False, use_global_cache=False)
            assert model == stored, model.key
        by_id = {e.key.path_elements[-1]: e for e in entities}
        full = entities_lib.to_model(by_id['full'], ExportEveryType)
        assert full.blob_z == b'compress me ' * 100 and full.local_z.a == 'c'
        assert full.keys[1].namespace() == 'elsewhere'
        assert full.u.email() == 'a@example.com'

    # The same Beam entities as the Datastore read yields (which turns a
    # keyless embedded entity into a dict: equal as a mapping).
    from_datastore = export_helpers.collect(
        _ReadKinds(datastore_target), tmp_path)
    expected = {str(e.key.path_elements): e for e in from_datastore}
    assert len(expected) == len(entities)
    for entity in entities:
        assert entity == expected[str(entity.key.path_elements)], entity.key


class _ReadKinds(beam.PTransform):
    def __init__(self, target):
        super().__init__()
        self._target = target

    def expand(self, pbegin):
        reads = [pbegin | f'Read {kind._get_kind()}' >> datastoreio.ReadFromDatastore(
            beam_types.Query(kind=kind._get_kind(), project=self._target.project,
                             namespace=self._target.namespace), num_splits=1)
                 for kind in KINDS]
        return reads | beam.Flatten()


class ExportOnceCompressed(ndb.Model):
    blob = ndb.BlobProperty()     # was BlobProperty(compressed=True)


def test_a_compressed_blob_read_by_an_uncompressed_property_is_decompressed(
        datastore_target):
    # ndb reads the v1 meaning of a compressed blob; the decoder keeps it.
    stored = datastore_client.Entity(
        datastore_client.Key('ExportOnceCompressed', 'z', project='p'),
        exclude_from_indexes=('blob',))
    stored['blob'] = zlib.compress(b'zzz' * 100)
    stored._meanings['blob'] = (22, stored['blob'])
    entity = decode.EntityDecoder(datastore_target.project).decode(
        encode.encode(stored))
    assert entity.meanings == {'blob': 22}
    with testing.ndb_context(datastore_target):
        model = entities_lib.to_model(entity, ExportOnceCompressed)
    assert model.blob == b'zzz' * 100


def test_keys_move_to_the_project_of_the_run(datastore_target):
    with testing.ndb_context(datastore_target):
        model = export_helpers.every_type_models()[0]
        record = encode.encode(model, project='s~prod-app')
    entity = decode.EntityDecoder('rehearsal').decode(record)
    assert decode.project_of_app('s~prod-app') == 'prod-app'
    assert decode.project_of_app('e~prod-app') == 'prod-app'
    assert entity.key.project == 'rehearsal'
    assert entity.key.namespace == datastore_target.namespace
    assert entity.properties['k'].project == 'rehearsal'
    assert {key.project for key in entity.properties['keys']} == {'rehearsal'}
