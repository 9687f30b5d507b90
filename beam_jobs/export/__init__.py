"""Datastore managed exports: read them into a pipeline, write them.

A run over production-size data reads a managed export (what `gcloud
datastore export` writes) instead of the Datastore: `ReadExport` yields the
same Beam entities the Datastore read does, so the job after it is unchanged.
The modules, from the bytes up:

    records.py         LevelDB log files: the record format of every file
    protos.py          the EntityProto and metadata messages
    decode.py          EntityProto → Beam entity; encode.py, the reverse
    metadata.py        an export's metadata and folders: ExportInfo
    files.py           its data files as a splittable Beam source
    after_state.py     a rehearsal's writes beside an export, read as one
    reader.py          ReadExport: an export or an after state, by kind
    writer.py          entities → an export folder (sample data, after states)
    emulator_admin.py  the local emulator's :export and :import
"""

from beam_jobs.export.emulator_admin import EmulatorAdminError
from beam_jobs.export.emulator_admin import export_from_emulator
from beam_jobs.export.emulator_admin import import_into_emulator
from beam_jobs.export.metadata import ExportError
from beam_jobs.export.metadata import ExportInfo
from beam_jobs.export.metadata import read_export_info
from beam_jobs.export.records import RecordError
from beam_jobs.export.reader import ReadExport
from beam_jobs.export.writer import write_export

__all__ = ['ReadExport', 'ExportInfo', 'read_export_info', 'ExportError',
           'RecordError', 'write_export', 'export_from_emulator',
           'import_into_emulator', 'EmulatorAdminError']
