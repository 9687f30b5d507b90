"""What a managed export holds: its metadata files and its folders.

`gcloud datastore export` (and the emulator's `:export`) writes

    PREFIX/TS/TS.overall_export_metadata
    PREFIX/TS/{all_namespaces|default_namespace|namespace_X}/{all_kinds|kind_K}/
        NS_KIND.export_metadata, output-0, output-1, …

The overall metadata lists the folders (entity sets): each is one kind or
all kinds, crossed with one namespace, the default one or all namespaces. A
full export is a single `all_namespaces/all_kinds` set, whose records mix
every kind and namespace, so whoever reads a kind from it must filter.

`read_export_info` finds and reads that, and answers which data files hold a
kind, before any pipeline runs, so a wrong path or kind fails at once. Counts:
the metadata counts the entities of each set; for a set of several kinds it
only has the total, so `entity_count` of one kind there is None (unknown
without reading the whole set). Paths are local or `gs://`: every access goes
through Beam's `FileSystems`.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Optional

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from google.protobuf.message import DecodeError

from beam_jobs import refusals
from beam_jobs.export import protos
from beam_jobs.export import records

OVERALL_SUFFIX = '.overall_export_metadata'
METADATA_VERSION = b'3'
ONE_KIND, ALL_KINDS = 1, 2
DEFAULT_NAMESPACE, ONE_NAMESPACE, ALL_NAMESPACES = 1, 2, 3
_DATA_FILE = re.compile(r'output-(\d+)$')


class ExportError(refusals.Refused):
    """A managed export is missing, unreadable, or lacks what was asked."""


@dataclasses.dataclass(frozen=True)
class EntitySet:
    """One folder of an export.

    `kind` None: every kind. `namespace`: '' for the default namespace,
    None for every namespace.
    """

    kind: Optional[str]
    namespace: Optional[str]
    folder: str
    num_entities: int
    num_bytes: int

    def holds(self, kind: str, namespace: str) -> bool:
        return (self.kind in (None, kind)
                and self.namespace in (None, namespace))

    def describe(self) -> str:
        kind = 'all kinds' if self.kind is None else self.kind
        namespace = ('all namespaces' if self.namespace is None else
                     f'namespace {self.namespace}' if self.namespace else
                     'default namespace')
        return f'{kind} ({namespace})'


@dataclasses.dataclass(frozen=True)
class ExportInfo:
    """One export: where its metadata is, when it was taken, what it holds."""

    metadata_path: str
    timestamp: str
    entity_sets: tuple[EntitySet, ...]

    @property
    def folder(self) -> str:
        return FileSystems.split(self.metadata_path)[0]

    @property
    def kinds(self) -> Optional[list[str]]:
        """The kinds held, or None if a set holds all kinds (unknown here)."""
        if any(entity_set.kind is None for entity_set in self.entity_sets):
            return None
        return sorted({entity_set.kind or '' for entity_set in self.entity_sets})

    @property
    def namespaces(self) -> Optional[list[str]]:
        """The namespaces held ('' the default), or None if all were exported."""
        if any(entity_set.namespace is None for entity_set in self.entity_sets):
            return None
        return sorted({entity_set.namespace or '' for entity_set in self.entity_sets})

    def entity_set(self, kind: str, namespace: Optional[str] = None) -> EntitySet:
        """The set that holds `kind` in `namespace` (None: the default one)."""
        namespace = namespace or ''
        held = [entity_set for entity_set in self.entity_sets
                if entity_set.holds(kind, namespace)]
        if not held:
            where = f'namespace {namespace}' if namespace else 'the default namespace'
            raise ExportError(
                f'The export {self.metadata_path} holds no {kind} entities of '
                f'{where}; it holds: '
                f'{", ".join(s.describe() for s in self.entity_sets) or "nothing"}. '
                'Export that kind, or read another.')
        # The most specific set, should an export hold overlapping ones.
        return min(held, key=lambda s: (s.kind is None, s.namespace is None))

    def entity_count(self, kind: str, namespace: Optional[str] = None) -> Optional[int]:
        """How many `kind` entities the metadata counts; None if unknown."""
        entity_set = self.entity_set(kind, namespace)
        if entity_set.kind is None or entity_set.namespace is None:
            return None
        return entity_set.num_entities

    def data_files(self, kind: str, namespace: Optional[str] = None) -> list[str]:
        """The `output-N` files that hold `kind` (and maybe other kinds)."""
        return data_files(self.entity_set(kind, namespace).folder)

    def app_id(self) -> Optional[str]:
        """The app id in the export's keys (None if it holds no entity).

        The metadata does not name the project; the first record does.
        """
        for entity_set in self.entity_sets:
            for path in data_files(entity_set.folder):
                with FileSystems.open(
                        path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                    for _, record in records.read_records(f, path):
                        return protos.EntityProto.FromString(record).key.app
        return None


def data_files(folder: str) -> list[str]:
    """The `output-N` files of a folder, in number order (gaps allowed)."""
    [match] = FileSystems.match([FileSystems.join(folder, 'output-*')])
    numbered = []
    for found in match.metadata_list:
        name = FileSystems.split(found.path)[1]
        number = _DATA_FILE.match(name)
        if number:
            numbered.append((int(number.group(1)), found.path))
    return [path for _, path in sorted(numbered)]


def find_metadata(path: str) -> str:
    """The `.overall_export_metadata` file `path` is, or the folder holds."""
    if path.endswith(OVERALL_SUFFIX):
        if not FileSystems.exists(path):
            raise ExportError(
                f'The export metadata file {path} does not exist: check the '
                'path (gcloud prints it when the export finishes).')
        return path
    path = path.rstrip('/')
    for pattern in ('*' + OVERALL_SUFFIX, '*/*' + OVERALL_SUFFIX):
        [match] = FileSystems.match([FileSystems.join(path, pattern)])
        found = sorted(metadata.path for metadata in match.metadata_list)
        if len(found) == 1:
            return found[0]
        if found:
            raise ExportError(
                f'{path} holds {len(found)} exports '
                f'({", ".join(FileSystems.split(f)[0] for f in found)}): pass '
                'the folder or .overall_export_metadata file of one of them.')
    raise ExportError(
        f'No managed export found at {path}: expected '
        f'{path}/TS/TS{OVERALL_SUFFIX} (what `gcloud datastore export` writes); '
        'pass that file or the folder that holds it.')


def read_export_info(path: str) -> ExportInfo:
    """The export at `path`: its `.overall_export_metadata` or a folder."""
    metadata_path = find_metadata(path)
    try:
        with FileSystems.open(metadata_path,
                              compression_type=CompressionTypes.UNCOMPRESSED) as f:
            found = [record for _, record in
                     records.read_records(f, metadata_path)]
        if len(found) != 2 or found[0] != METADATA_VERSION:
            raise ExportError(
                f'expected a version record "3" and one metadata record, found '
                f'{len(found)} records' + (f' starting {found[0][:20]!r}' if found else ''))
        overall = protos.OverallExportMetadata.FromString(found[1])
    except (records.RecordError, ExportError, DecodeError, OSError) as error:
        raise ExportError(
            f'The export metadata file {metadata_path} cannot be read ({error}): '
            'export again, or pass an intact copy.') from error
    folder, name = FileSystems.split(metadata_path)
    sets = []
    for entry in overall.exports:
        spec = entry.entity_set
        entity_folder = FileSystems.split(
            FileSystems.join(folder, entry.metadata_file))[0]
        sets.append(EntitySet(
            kind=None if spec.kind_type == ALL_KINDS else spec.kind,
            namespace=None if spec.namespace_type == ALL_NAMESPACES else (
                spec.namespace if spec.namespace_type == ONE_NAMESPACE else ''),
            folder=entity_folder, num_entities=entry.num_entities,
            num_bytes=entry.num_bytes))
    return ExportInfo(metadata_path=metadata_path,
                      timestamp=name[:-len(OVERALL_SUFFIX)],
                      entity_sets=tuple(sets))


def read_backup(path: str) -> protos.Backup:
    """A set's `NS_KIND.export_metadata` (the old Datastore Admin `Backup`)."""
    try:
        with FileSystems.open(path,
                              compression_type=CompressionTypes.UNCOMPRESSED) as f:
            return protos.Backup.FromString(f.read())
    except (DecodeError, OSError) as error:
        raise ExportError(
            f'The export metadata file {path} cannot be read ({error}): export '
            'again, or pass an intact copy.') from error
