"""ReadExport over both export layouts, namespaces, splits and Cloud Storage."""

import uuid

import pytest
from apache_beam.io import source_test_utils
from google.cloud import datastore as client
from google.cloud import ndb

from beam_jobs import testing
from beam_jobs import entities as entities_lib
from beam_jobs import target as target_lib
from beam_jobs.export import ReadExport, emulator_admin, metadata, write_export
from beam_jobs.export.records import BLOCK_SIZE
from beam_jobs.export.files import ExportFileSource
from tests import export_helpers
from tests.storage_emulator import BUCKET


class ExportNote(ndb.Model):
    text = ndb.StringProperty()
    n = ndb.IntegerProperty()


class ExportTag(ndb.Model):
    name = ndb.StringProperty()


def _put_notes(target, namespace, count):
    with testing.ndb_context(target):
        notes = [ExportNote(id=f'n{i}', text=f'note {i} in {namespace}', n=i,
                            namespace=namespace) for i in range(count)]
        tags = [ExportTag(id=f't{i}', name=f'tag {i}', namespace=namespace)
                for i in range(2)]
        ndb.put_multi(notes + tags)
    return notes + tags


def _ids(entities):
    return sorted((e.key.path_elements[-2], e.key.path_elements[-1],
                   e.key.namespace) for e in entities)


def _expected(models):
    return sorted((m.key.kind(), m.key.id(), m.key.namespace()) for m in models)


def test_a_full_export_is_read_by_kind_and_namespace(datastore_emulator,
                                                     datastore_target, tmp_path):
    mine = _put_notes(datastore_target, datastore_target.namespace, 5)
    other = _put_notes(datastore_target, datastore_target.namespace + 'b', 3)
    path = emulator_admin.export_from_emulator(
        datastore_emulator.host, datastore_target.project, str(tmp_path / 'full'))
    info = metadata.read_export_info(path)
    assert [(s.kind, s.namespace) for s in info.entity_sets] == [(None, None)]
    assert 'all_namespaces/all_kinds' in info.data_files('ExportNote')[0]
    assert info.kinds is None and info.entity_count('ExportNote') is None

    read = export_helpers.collect(
        ReadExport(path, [ExportNote, 'ExportTag'], namespace=datastore_target.namespace),
        tmp_path)
    assert _ids(read) == _expected(mine)
    read = export_helpers.collect(
        ReadExport(str(tmp_path / 'full'), ['ExportNote'],
                   namespace=datastore_target.namespace + 'b'), tmp_path)
    assert _ids(read) == _expected(other[:3])
    with testing.ndb_context(datastore_target):
        assert [entities_lib.to_model(e, ExportNote) for e in read if e.key.path_elements[-1] == 'n1'] == [
            other[1].key.get(use_cache=False, use_global_cache=False)]


def test_a_per_kind_export_of_several_kinds(datastore_emulator, datastore_target,
                                            tmp_path):
    models = _put_notes(datastore_target, datastore_target.namespace, 4)
    dest = tmp_path / 'per-kind'
    path = emulator_admin.export_from_emulator(
        datastore_emulator.host, datastore_target.project, str(dest),
        kinds=['ExportNote', 'ExportTag'], namespace=datastore_target.namespace)
    info = metadata.read_export_info(path)
    assert info.kinds == ['ExportNote', 'ExportTag']
    assert info.namespaces == [datastore_target.namespace]
    assert info.entity_count('ExportNote', datastore_target.namespace) == 4
    assert info.entity_count('ExportTag', datastore_target.namespace) == 2
    assert f'namespace_{datastore_target.namespace}/kind_ExportTag' in info.data_files(
        'ExportTag', datastore_target.namespace)[0]
    # The emulator wrote one export per kind; the folder is ambiguous.
    with pytest.raises(metadata.ExportError, match=r'holds 2 exports \(.*\): pass'):
        metadata.read_export_info(str(dest))
    read = export_helpers.collect(ReadExport(
        path, [ExportNote, ExportTag], namespace=datastore_target.namespace), tmp_path)
    assert _ids(read) == _expected(models)


def test_the_default_namespace_and_a_namespace_export(datastore_emulator,
                                                      datastore_target, tmp_path):
    kind = f'ExportDefault{uuid.uuid4().hex[:6]}'
    with testing.ndb_context(target_lib.Target(datastore_target.project)):
        keys = [client.Key(kind, i, project=datastore_target.project) for i in (1, 2)]
        store = target_lib.client(target_lib.Target(datastore_target.project))
        for key in keys:
            entity = client.Entity(key)
            entity['v'] = key.id
            store.put(entity)
    path = emulator_admin.export_from_emulator(
        datastore_emulator.host, datastore_target.project, str(tmp_path / 'd'),
        kinds=[kind], namespace='')
    assert 'default_namespace/kind_' in metadata.read_export_info(path).data_files(kind)[0]
    read = export_helpers.collect(ReadExport(path, [kind]), tmp_path)
    assert sorted((e.key.path_elements, e.key.namespace, e.properties['v'])
                  for e in read) == [((kind, 1), None, 1), ((kind, 2), None, 2)]

    # A namespace's export: all its kinds in one folder, read by kind.
    models = _put_notes(datastore_target, datastore_target.namespace, 2)
    path = export_helpers.export_namespace(datastore_emulator, datastore_target, tmp_path)
    assert f'namespace_{datastore_target.namespace}/all_kinds' in metadata.read_export_info(
        path).data_files('ExportTag', datastore_target.namespace)[0]
    read = export_helpers.collect(ReadExport(path, [ExportTag],
                                             namespace=datastore_target.namespace), tmp_path)
    assert _ids(read) == _expected(models[2:])


def _notes(count, size, namespace=None):
    entities = []
    for number in range(1, count + 1):
        entity = client.Entity(client.Key('Note', number, project='p', namespace=namespace),
                               exclude_from_indexes=('body',))
        entity['body'] = f'{number:05d}'.encode() * (size // 5)
        entity['n'] = number
        entities.append(entity)
    return entities


def _single_file_source(path, kinds=('Note',)):
    [data_file] = metadata.read_export_info(path).data_files('Note')
    return ExportFileSource(data_file, 'p', kinds, '')


def test_splits_inside_a_file_read_every_entity_once(tmp_path):
    # 24 entities of ~4 KB, some across block boundaries: ~3 blocks.
    path = write_export(_notes(24, 4000), str(tmp_path / 'x'))
    source = _single_file_source(path)
    splits = list(source.split(desired_bundle_size=BLOCK_SIZE // 2))
    assert len(splits) >= 5
    source_test_utils.assert_sources_equal_reference_source(
        (source, None, None), [(s.source, s.start_position, s.stop_position)
                               for s in splits])
    read = source_test_utils.read_from_source(source)
    assert [e.properties['n'] for e in read] == list(range(1, 25))


def test_dynamic_splitting_is_exhaustively_consistent(tmp_path):
    path = write_export(_notes(9, 9000), str(tmp_path / 'x'))
    [whole] = _single_file_source(path).split(desired_bundle_size=10 ** 9)
    source_test_utils.assert_split_at_fraction_exhaustive(
        whole.source, whole.start_position, whole.stop_position,
        perform_multi_threaded_test=False)


def test_every_data_file_is_at_least_one_split(tmp_path):
    path = write_export(_notes(20, 100), str(tmp_path / 'x'), entities_per_file=3)
    files = metadata.read_export_info(path).data_files('Note')
    assert len(files) == 7
    source = ExportFileSource(files[0].rsplit('/', 1)[0] + '/output-*', 'p', ['Note'], '')
    splits = list(source.split(desired_bundle_size=10 ** 9))
    assert len(splits) == 7
    read = [e for s in splits for e in source_test_utils.read_from_source(
        s.source, s.start_position, s.stop_position)]
    assert sorted(e.properties['n'] for e in read) == list(range(1, 21))


def test_read_export_from_cloud_storage(gcs, tmp_path):
    written = _notes(30, 2000) + _notes(3, 10, namespace='elsewhere')
    dest = f'gs://{BUCKET}/exports/{uuid.uuid4().hex[:8]}'
    write_export(written, dest, project='s~prod-app', entities_per_file=10)
    assert len(list(gcs.list_blobs(BUCKET, prefix=dest.split('/', 3)[3]))) == 7
    read = export_helpers.collect(ReadExport(dest, ['Note']), tmp_path)
    assert sorted(e.properties['n'] for e in read) == list(range(1, 31))
    assert {(e.key.project, e.key.namespace) for e in read} == {('prod-app', None)}
    by_number = {e.properties['n']: e for e in read}
    assert by_number[7].properties['body'] == written[6]['body']
