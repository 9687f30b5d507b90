"""The writer: exports the emulator's `:import` accepts, and sample data."""

import os
import uuid

from google.auth.credentials import AnonymousCredentials
from google.cloud import ndb

from beam_jobs import testing
from beam_jobs import entities as entities_lib
from beam_jobs.export import (ReadExport, decode, emulator_admin, encode, metadata,
                              records, write_export)
from pipelines import sample_data
from pipelines.models import exp_models
from tests import export_helpers


def test_sample_data_export_imports_as_load_puts_them(
        datastore_emulator, datastore_target, tmp_path, capsys):
    count, exported_namespace = 11, f'{datastore_target.namespace}x'
    assert sample_data.main([
        '--export', str(tmp_path / 'sample'), '--explorations', str(count),
        '--namespace', exported_namespace, '--entities-per-file', '4',
        '--project', 'sample-app']) == 0
    assert 'entities/s' in capsys.readouterr().out
    info = metadata.read_export_info(str(tmp_path / 'sample'))
    assert info.entity_count('ExplorationModel', exported_namespace) == count
    assert [path.rsplit('/', 1)[1] for path in info.data_files(
        'ExplorationModel', exported_namespace)] == ['output-0', 'output-1', 'output-2']

    emulator_admin.import_into_emulator(datastore_emulator.host,
                                        datastore_target.project, info.metadata_path)
    sample_data.load(count, datastore_target)
    read = ReadExport(info.metadata_path, [exp_models.ExplorationModel],
                      namespace=exported_namespace)
    assert read.project == 'sample-app'
    entities = export_helpers.collect(ReadExport(
        info.metadata_path, [exp_models.ExplorationModel],
        project=datastore_target.project, namespace=exported_namespace), tmp_path)

    with testing.ndb_context(datastore_target):
        loaded = {m.key.id(): m for m in exp_models.ExplorationModel.query().fetch()}
        imported = {m.key.id(): m for m in exp_models.ExplorationModel.query(
            namespace=exported_namespace).fetch()}
        read_back = {e.key.path_elements[-1]: entities_lib.to_model(
            e, exp_models.ExplorationModel) for e in entities}
    assert sorted(loaded) == sorted(imported) == sorted(read_back) == [
        f'exp-{n:06d}' for n in range(1, count + 1)]
    for ident, model in loaded.items():
        assert imported[ident].to_dict() == model.to_dict()
        assert read_back[ident] == imported[ident]


def test_sample_data_beyond_the_pool_exports_copies_of_pool_members(tmp_path):
    """Files above the pool are copied records, renamed; they hold what
    `explorations` yields, as do files that straddle the pool's end."""
    count, pool, namespace = 20, 7, 'copies'
    path = sample_data.export(count, str(tmp_path / 'pooled'), 'sample-app',
                              namespace=namespace, per_file=6, processes=2, pool=pool)
    info = metadata.read_export_info(path)
    [written] = info.entity_sets
    files = info.data_files('ExplorationModel', namespace)
    assert [f.rsplit('/', 1)[1] for f in files] == [f'output-{i}' for i in range(4)]
    decoder = decode.EntityDecoder('sample-app')
    exported, sizes = [], []
    for file in files:
        with open(file, 'rb') as stream:
            exported.append([decoder.decode(record)
                             for _, record in records.read_records(stream, file)])
        sizes.append(os.path.getsize(file))
    assert [len(entities) for entities in exported] == [6, 6, 6, 2]
    assert written.num_entities == count and written.num_bytes == sum(sizes)

    client = ndb.Client(project='sample-app', namespace=namespace,
                        credentials=AnonymousCredentials())
    with client.context(legacy_data=True):
        expected = [decoder.decode(encode.encode(model))
                    for model in sample_data.explorations(count, pool=pool)]
    exported = [entity for entities in exported for entity in entities]
    assert exported == expected
    assert [e.key.path_elements[-1] for e in exported] == [
        f'exp-{n:06d}' for n in range(1, count + 1)]
    # exp-000015 is pool member 1 under its own id, exp-000014 member 7.
    assert exported[14].properties == exported[0].properties
    assert exported[13].properties == exported[6].properties != exported[0].properties


def test_written_entities_of_every_type_import_as_put_stores_them(
        datastore_emulator, datastore_target, tmp_path):
    """Put one copy; write another, in another namespace, and import it."""
    namespace = f'{datastore_target.namespace}w'
    with testing.ndb_context(datastore_target):
        put = export_helpers.every_type_models()
        ndb.put_multi(put)
        written = export_helpers.every_type_models(namespace)
        path = write_export(written, str(tmp_path / 'written'), entities_per_file=2)
    info = metadata.read_export_info(path)
    assert {(s.kind, s.namespace, s.num_entities) for s in info.entity_sets} == {
        ('ExportEveryType', namespace, 3), ('ExportInner', namespace, 2)}
    emulator_admin.import_into_emulator(datastore_emulator.host,
                                        datastore_target.project, path)
    with testing.ndb_context(datastore_target):
        for model, copy in zip(put, written):
            stored = model.key.get(use_cache=False, use_global_cache=False)
            imported = copy.key.get(use_cache=False, use_global_cache=False)
            assert imported.to_dict() == stored.to_dict(), copy.key


def test_exports_of_several_namespaces_and_kinds_stream_into_files(tmp_path):
    entities = []
    for namespace in (None, 'other'):
        for number in range(5):
            entity = datastore_client_entity('Note', number + 1, namespace)
            entities.append(entity)
        entities.append(datastore_client_entity('Tag', 'a', namespace))
    path = write_export(iter(entities), str(tmp_path / 'streamed'),
                        project='p', entities_per_file=2)
    info = metadata.read_export_info(str(tmp_path / 'streamed'))
    assert info.metadata_path == path
    assert info.kinds == ['Note', 'Tag'] and info.namespaces == ['', 'other']
    assert len(info.data_files('Note')) == 3 and len(info.data_files('Tag', 'other')) == 1
    assert 'default_namespace/kind_Note' in info.data_files('Note')[0]
    assert 'namespace_other/kind_Note' in info.data_files('Note', 'other')[0]
    backup = metadata.read_backup(
        info.data_files('Note')[0].rsplit('/', 1)[0]
        + '/default_namespace_kind_Note.export_metadata')
    assert list(backup.kind_info[0].file) == ['output-0', 'output-1', 'output-2']
    assert backup.backup_info.name == info.timestamp


def datastore_client_entity(kind, ident, namespace):
    from google.cloud import datastore as client  # pylint: disable=import-outside-toplevel
    entity = client.Entity(client.Key(kind, ident, project='p', namespace=namespace))
    entity['text'] = f'{kind} {ident} {uuid.uuid4().hex}'
    return entity
