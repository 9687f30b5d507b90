"""The emulator's :export and :import, and what their errors say."""

import pytest

from google.cloud import ndb

from beam_jobs import testing
from beam_jobs.export import EmulatorAdminError, ExportError, emulator_admin, metadata
from beam_jobs.export import write_export


class ExportAdminNote(ndb.Model):
    text = ndb.StringProperty()


def test_export_returns_the_whole_export_and_import_takes_its_folder(
        datastore_emulator, datastore_target, tmp_path):
    with testing.ndb_context(datastore_target):
        ndb.put_multi([ExportAdminNote(id=i, text=str(i)) for i in range(1, 4)])
    path = emulator_admin.export_from_emulator(
        datastore_emulator.host, datastore_target.project, str(tmp_path / 'e'),
        kinds=['ExportAdminNote'], namespace=datastore_target.namespace)
    assert path.endswith(metadata.OVERALL_SUFFIX)
    assert metadata.read_export_info(path).entity_count(
        'ExportAdminNote', datastore_target.namespace) == 3

    with testing.ndb_context(datastore_target):
        ndb.delete_multi([ndb.Key(ExportAdminNote, i) for i in range(1, 4)])
        assert ExportAdminNote.query().count() == 0
    emulator_admin.import_into_emulator(datastore_emulator.host,
                                        datastore_target.project,
                                        path.rsplit('/', 1)[0])
    with testing.ndb_context(datastore_target):
        assert sorted(n.text for n in ExportAdminNote.query()) == ['1', '2', '3']


def test_an_export_into_an_existing_folder_is_refused(datastore_emulator,
                                                      datastore_target, tmp_path):
    with pytest.raises(EmulatorAdminError, match='refused the export .*already exists'):
        emulator_admin.export_from_emulator(
            datastore_emulator.host, datastore_target.project, str(tmp_path),
            namespace=datastore_target.namespace)


def test_import_errors(datastore_emulator, datastore_target, tmp_path):
    with pytest.raises(ExportError, match='No managed export found'):
        emulator_admin.import_into_emulator(
            datastore_emulator.host, datastore_target.project, str(tmp_path))
    path = write_export([], str(tmp_path / 'empty'))
    with open(path, 'wb') as f:
        f.write(b'garbage')
    with pytest.raises(ExportError, match='cannot be read'):
        emulator_admin.import_into_emulator(
            datastore_emulator.host, datastore_target.project, path)
    good = write_export([], str(tmp_path / 'good'))
    with pytest.raises(EmulatorAdminError, match='could not be reached'):
        emulator_admin.import_into_emulator('localhost:1', 'p', good)
