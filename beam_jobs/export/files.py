"""The entities in an export's data files, read as a splittable Beam source.

Files are LevelDB logs whose blocks each start at a chunk boundary
(records.py), so `ExportFileSource` splits at any byte offset: every file is at
least one split, and a large file is several, read in parallel and rebalanced
by the runner. Each split reads one 32 KiB block at a time and one record at a
time, so memory does not grow with the export. `ReadFiles` reads any list of
files (the folders of an export, an after state's layers) by one transform.
"""

from __future__ import annotations

import collections
from typing import Iterable, Optional, Union

import apache_beam as beam
from apache_beam.io import filebasedsource
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_jobs.export import decode
from beam_jobs.export import metadata
from beam_jobs.export import records


class ExportFileSource(filebasedsource.FileBasedSource):
    """The entities of the files `file_pattern` matches, kept by kind.

    `kinds` None keeps every kind; `namespace` '' keeps the default
    namespace, None every namespace. Keys are put in `project`.
    """

    def __init__(self, file_pattern: str, project: Optional[str],
                 kinds: Optional[Iterable[str]] = None,
                 namespace: decode.NamespaceFilter = '', validate: bool = True):
        super().__init__(file_pattern,
                         compression_type=CompressionTypes.UNCOMPRESSED,
                         splittable=True, validate=validate)
        self._decoder = decode.EntityDecoder(project, None if kinds is None else list(kinds),
                                             namespace)

    def read_records(self, file_name, offset_range_tracker):
        decode_record = self._decoder.decode
        with self.open_file(file_name) as stream:
            for offset, record in records.read_records(
                    stream, file_name, offset_range_tracker.start_position()):
                if not offset_range_tracker.try_claim(offset):
                    return
                entity = decode_record(record)
                if entity is not None:
                    yield entity


class _SourceOfFile:
    """A file's path → the source that reads its entities (ReadAllFiles)."""

    def __init__(self, project: Optional[str], kinds: Optional[Iterable[str]],
                 namespace: decode.NamespaceFilter):
        self._args = (project, None if kinds is None else list(kinds), namespace)

    def __call__(self, path: str) -> ExportFileSource:
        return ExportFileSource(path, *self._args, validate=False)


# Ranges of a data file read as one piece of work: an `output-N` file of
# 5,000 explorations is about 64 MiB. Files split at their 32 KiB blocks.
_RANGE_BYTES = 64 << 20


class ReadFiles(beam.PTransform):
    """pbegin → the entities in `files` (as `(file, entity)` if
    `with_filename`), read by one transform.

    One transform, not a Flatten of one read per file or folder: Beam's
    local runner cannot run a Flatten of several reads in the stage after
    them, so it holds every entity in memory between the two (7 GB for a
    rehearsal's read of 100,000 explorations). After this read the map
    step runs in the same stage, as after a single `beam.io.Read`.
    """

    def __init__(self, files: Iterable[str], project: Optional[str],
                 kinds: Optional[Iterable[str]], namespace: decode.NamespaceFilter,
                 with_filename: bool = False):
        super().__init__()
        self._files = list(files)
        self._source_of_file = _SourceOfFile(project, kinds, namespace)
        self._with_filename = with_filename

    def expand(self, pbegin):
        return (pbegin
                | 'Files' >> beam.Create(self._files)
                | 'Read files' >> filebasedsource.ReadAllFiles(
                    True, CompressionTypes.UNCOMPRESSED, _RANGE_BYTES, 0,
                    self._source_of_file, with_filename=self._with_filename))


class Selection:
    """The folders and data files of an export that hold `kinds` in
    `namespace` ('' or None: the default one; a tuple: each of those), and
    the project keys go to
    (None: the export's own, its app id without an `s~`/`e~` prefix).
    Raises ExportError, naming what the export holds, for a kind it lacks."""

    def __init__(self, path: str, kinds: Iterable[str], project: Optional[str],
                 namespace: Union[None, str, tuple[str, ...]]):
        self.info = metadata.read_export_info(path)
        # Several namespaces (a tuple) are kept as a set the decoder filters on.
        self.namespace = (frozenset(n or '' for n in namespace)
                          if isinstance(namespace, (tuple, list, frozenset))
                          else namespace or '')
        spaces = sorted(self.namespace) if isinstance(self.namespace, frozenset) \
            else [self.namespace]
        # Each folder is read once, for every kind wanted from it.
        folders: dict[str, list[str]] = collections.defaultdict(list)
        for kind in dict.fromkeys(kinds):
            for space in spaces:
                folder = self.info.entity_set(kind, space).folder
                if kind not in folders[folder]:
                    folders[folder].append(kind)
        # An empty set may have no data file at all: nothing to read there.
        self.folders = {folder: wanted for folder, wanted in folders.items()
                        if metadata.data_files(folder)}
        if project is None:
            app = self.info.app_id()
            project = decode.project_of_app(app) if app else None
        self.project = project

    def kinds(self) -> list[str]:
        return sorted({kind for kinds in self.folders.values() for kind in kinds})

    def data_files(self) -> list[str]:
        return [path for folder in self.folders for path in metadata.data_files(folder)]


class ReadSelection(beam.PTransform):
    """pbegin → the entities of a Selection, by one read."""

    def __init__(self, selection: Selection):
        super().__init__()
        self._selection = selection

    @property
    def info(self) -> metadata.ExportInfo:
        return self._selection.info

    @property
    def project(self) -> Optional[str]:
        return self._selection.project

    def expand(self, pbegin):
        selection = self._selection
        if not selection.folders:
            return pbegin | 'No entities' >> beam.Create([])
        if len(selection.folders) > 1:   # one kind a folder: every file in one read
            return pbegin | 'Read folders' >> ReadFiles(
                selection.data_files(), selection.project, selection.kinds(),
                selection.namespace)
        [(folder, kinds)] = selection.folders.items()
        source = ExportFileSource(FileSystems.join(folder, 'output-*'),
                                  selection.project, kinds, selection.namespace)
        label = folder.rstrip('/').rsplit('/', 2)
        return pbegin | f'Read {"/".join(label[-2:])}' >> beam.io.Read(source)
