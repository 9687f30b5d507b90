"""An export's metadata, and the errors a bad path, file or kind gives."""

import re

import pytest
from google.cloud import datastore as client

from beam_jobs.export import ExportError, ReadExport, metadata, write_export
from beam_jobs.export.records import BLOCK_SIZE
from tests import export_helpers


def _export(folder, count=6, kinds=('Note', 'Tag'), size=10):
    entities = []
    for kind in kinds:
        for number in range(1, count + 1):
            entity = client.Entity(client.Key(kind, number, project='p'))
            entity['body'] = 'x' * size
            entities.append(entity)
    return write_export(entities, str(folder))


def test_the_metadata_describes_the_export(tmp_path):
    path = _export(tmp_path / 'e')
    for given in (path, str(tmp_path / 'e'), path.rsplit('/', 1)[0],
                  str(tmp_path / 'e') + '/'):
        info = metadata.read_export_info(given)
        assert info.metadata_path == path
    assert info.timestamp == path.rsplit('/', 1)[1].split('.')[0]
    assert info.kinds == ['Note', 'Tag'] and info.namespaces == ['']
    assert info.entity_count('Note') == 6
    assert info.app_id() == 'p'


def test_no_export_at_the_path(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ExportError, match=r'No managed export found at .*/empty: expected'):
        metadata.read_export_info(str(tmp_path / 'empty'))
    with pytest.raises(ExportError, match=r'X.overall_export_metadata does not exist'):
        ReadExport(str(tmp_path / 'X.overall_export_metadata'), ['Note'])


@pytest.mark.parametrize('content', [b'', b'not a log file at all', b'\x00' * 40])
def test_an_unreadable_metadata_file(tmp_path, content):
    path = _export(tmp_path / 'e')
    with open(path, 'wb') as f:
        f.write(content)
    with pytest.raises(ExportError, match=r'metadata file .* cannot be read .*export again'):
        metadata.read_export_info(path)


def test_a_metadata_file_cut_short(tmp_path):
    path = _export(tmp_path / 'e')
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:-5])
    with pytest.raises(ExportError, match='cut short'):
        metadata.read_export_info(path)


def test_a_kind_or_namespace_the_export_does_not_hold(tmp_path):
    path = _export(tmp_path / 'e')
    with pytest.raises(ExportError, match=r'holds no Nope entities of the default namespace; '
                       r'it holds: Note \(default namespace\), Tag \(default namespace\)'):
        ReadExport(path, ['Note', 'Nope'])
    with pytest.raises(ExportError, match='holds no Note entities of namespace other'):
        ReadExport(path, ['Note'], namespace='other')
    with pytest.raises(TypeError, match='kind names or ndb model classes'):
        ReadExport(path, [42])


def test_a_folder_with_several_exports(tmp_path):
    first = _export(tmp_path / 'both')
    second = _export(tmp_path / 'both')
    with pytest.raises(ExportError, match='holds 2 exports') as error:
        ReadExport(str(tmp_path / 'both'), ['Note'])
    for path in (first, second):
        assert path.rsplit('/', 1)[0] in str(error.value)


def test_a_corrupt_data_file_fails_the_read_naming_file_and_offset(tmp_path):
    path = _export(tmp_path / 'e', count=40, kinds=('Note',), size=3000)
    [data_file] = metadata.read_export_info(path).data_files('Note')
    with open(data_file, 'r+b') as f:
        f.seek(BLOCK_SIZE + 1000)
        byte = f.read(1)
        f.seek(BLOCK_SIZE + 1000)
        f.write(bytes([byte[0] ^ 0x20]))
    with pytest.raises(Exception, match=re.escape(data_file) + r' is corrupt at byte \d+: checksum'):
        export_helpers.collect(ReadExport(path, ['Note']), tmp_path)
