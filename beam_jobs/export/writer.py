"""Writes entities as a managed export, shaped as production writes one.

    DEST/TS/TS.overall_export_metadata
    DEST/TS/default_namespace/kind_K/default_namespace_kind_K.export_metadata
    DEST/TS/default_namespace/kind_K/output-0, output-1, …
    DEST/TS/namespace_X/kind_K/…                  (a named namespace)

This is how sample data reaches production size without the emulator (whose
reads slow down with the square of a kind's size), and how a rehearsal will
lay an "after" state over an export. The result is what `ReadExport` reads
and what the emulator's `:import` accepts. `write_export` streams: it keeps
one open data file per kind and namespace, never the entities. The pieces
(`write_data_file`, `write_record_file`, `write_metadata`) are public so that
a caller can write data files in parallel and the metadata once at the end.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from typing import Any, BinaryIO, Iterable, Optional

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_jobs.export import encode
from beam_jobs.export import metadata
from beam_jobs.export import protos
from beam_jobs.export import records

# As the emulator's export does. A reader splits files at 32 KiB blocks, so
# the file size does not limit how parallel a read is.
DEFAULT_ENTITIES_PER_FILE = 5000
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def export_timestamp(when: Optional[datetime.datetime] = None) -> str:
    """An export folder's name, as the emulator writes it: `…T10:47:47_109`."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    return when.strftime('%Y-%m-%dT%H:%M:%S_') + f'{when.microsecond // 1000:03d}'


def set_folder(kind: str, namespace: Optional[str] = None) -> str:
    """The folder of one kind in one namespace, relative to the export."""
    space = f'namespace_{namespace}' if namespace else 'default_namespace'
    return f'{space}/kind_{kind}'


@dataclasses.dataclass
class WrittenSet:
    """One kind in one namespace, as written: its files and totals."""

    kind: str
    namespace: str = ''
    files: list = dataclasses.field(default_factory=list)
    num_entities: int = 0
    num_bytes: int = 0


def _create(path: str) -> BinaryIO:
    return FileSystems.create(path, mime_type='application/octet-stream',
                              compression_type=CompressionTypes.UNCOMPRESSED)


def write_data_file(path: str, entities: Iterable[Any],
                    project: Optional[str] = None) -> tuple[int, int]:
    """Writes one `output-N` file; returns (entities, bytes) written.

    Entities: Beam or client entities, or ndb models (inside an ndb
    context); `project` None keeps each key's project.
    """
    return write_record_file(path, (encode.encode(entity, project)
                                    for entity in entities))


def write_record_file(path: str, encoded: Iterable[bytes]) -> tuple[int, int]:
    """Writes records already encoded as one `output-N` file; returns
    (records, bytes) written."""
    count = 0
    with _create(path) as stream:
        writer = records.RecordWriter(stream)
        for record in encoded:
            writer.write(record)
            count += 1
    return count, writer.bytes_written


def write_metadata(export_dir: str, sets: Iterable[WrittenSet],
                   start: datetime.datetime,
                   end: Optional[datetime.datetime] = None) -> str:
    """Writes each set's `.export_metadata` and the overall metadata file.

    `export_dir` is `DEST/TS`; returns the `.overall_export_metadata` path.
    """
    timestamp = FileSystems.split(export_dir.rstrip('/'))[1]
    end = end or datetime.datetime.now(datetime.timezone.utc)
    overall = protos.OverallExportMetadata()
    for written in sorted(sets, key=lambda s: (s.namespace, s.kind)):
        folder = set_folder(written.kind, written.namespace)
        name = folder.replace('/', '_') + '.export_metadata'
        backup = protos.Backup()
        backup.backup_info.name = timestamp
        backup.backup_info.start_timestamp = _micros(start)
        backup.backup_info.end_timestamp = _micros(end)
        backup.kind_info.add(kind=written.kind).file.extend(written.files)
        with _create(FileSystems.join(export_dir, folder, name)) as stream:
            stream.write(backup.SerializeToString())
        entry = overall.exports.add(
            metadata_file=f'{folder}/{name}',
            num_entities=written.num_entities, num_bytes=written.num_bytes)
        spec = entry.entity_set
        spec.kind_type, spec.kind = metadata.ONE_KIND, written.kind
        spec.namespace_type = (metadata.ONE_NAMESPACE if written.namespace
                               else metadata.DEFAULT_NAMESPACE)
        spec.namespace = written.namespace
    path = FileSystems.join(export_dir, timestamp + metadata.OVERALL_SUFFIX)
    with _create(path) as stream:
        writer = records.RecordWriter(stream)
        writer.write(metadata.METADATA_VERSION)
        writer.write(overall.SerializeToString())
    return path


def new_export_dir(dest: str) -> tuple[str, datetime.datetime]:
    """`DEST/TS` for a new export, and the time TS names.

    Folders are named by the millisecond; one taken already (two exports in
    the same millisecond) is never reused.
    """
    for _ in range(100):
        when = datetime.datetime.now(datetime.timezone.utc)
        export_dir = FileSystems.join(dest.rstrip('/'), export_timestamp(when))
        if not FileSystems.exists(export_dir):
            return export_dir, when
        time.sleep(0.001)
    raise FileExistsError(
        f'{export_dir} already exists: write the export to another folder.')


class _OpenSet:
    """The data file being written for one kind in one namespace."""

    def __init__(self, export_dir: str, written: WrittenSet):
        self.written = written
        self._folder = FileSystems.join(
            export_dir, set_folder(written.kind, written.namespace))
        self._stream: Optional[BinaryIO] = None
        self._writer: Optional[records.RecordWriter] = None
        self._in_file = 0

    def write(self, record: bytes, per_file: int) -> None:
        if self._stream is None or self._in_file == per_file:
            self.close()
            name = f'output-{len(self.written.files)}'
            self._stream = _create(FileSystems.join(self._folder, name))
            self._writer = records.RecordWriter(self._stream)
            self.written.files.append(name)
            self._in_file = 0
        assert self._writer is not None   # opened just above
        self._writer.write(record)
        self._in_file += 1
        self.written.num_entities += 1

    def close(self) -> None:
        if self._stream is not None and self._writer is not None:
            self._stream.close()
            self.written.num_bytes += self._writer.bytes_written
            self._stream = None


def write_export(entities: Iterable[Any], dest: str,
                 project: Optional[str] = None,
                 entities_per_file: int = DEFAULT_ENTITIES_PER_FILE) -> str:
    """Writes `entities` as a new export under `dest`; returns its metadata path.

    Entities may mix kinds and namespaces, in any order. `project` None
    keeps each key's project (an import rewrites it anyway).
    """
    if entities_per_file < 1:
        raise ValueError(f'entities_per_file must be positive, not {entities_per_file}.')
    export_dir, start = new_export_dir(dest)
    open_sets: dict[tuple[str, str], _OpenSet] = {}
    try:
        for entity in entities:
            entity = encode.client_entity(entity)
            record = encode.encode(entity, project)
            kind, namespace = entity.key.kind, entity.key.namespace or ''
            open_set = open_sets.get((namespace, kind))
            if open_set is None:
                open_set = open_sets[(namespace, kind)] = _OpenSet(
                    export_dir, WrittenSet(kind, namespace))
            open_set.write(record, entities_per_file)
    finally:
        for open_set in open_sets.values():
            open_set.close()
    return write_metadata(export_dir, [s.written for s in open_sets.values()],
                          start)


def _micros(when: datetime.datetime) -> int:
    return (when - _EPOCH) // datetime.timedelta(microseconds=1)
