"""ReadExport: a managed export's entities, as the Datastore read gives them.

A run that reads an export instead of the Datastore swaps one transform:
`ReadExport(path, kinds)` yields the same Beam entities `ReadFromDatastore`
yields for those kinds, so the map step and everything after it are unchanged.

Reading is a Beam `FileBasedSource` over the `output-N` files of each folder
that holds a wanted kind. Files are LevelDB logs whose blocks each start at a
chunk boundary (records.py), so the source splits at any byte offset: every
file is at least one split, and a large file is several, read in parallel and
rebalanced by the runner. Each split reads one 32 KiB block at a time and one
record at a time, so memory does not grow with the export. A folder that holds
several kinds or namespaces (a full export) is read once for all the kinds
wanted from it, keeping only those.
"""

from __future__ import annotations

import collections
from typing import Iterable, Optional, Type, Union

import apache_beam as beam
from apache_beam.io import filebasedsource
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from google.cloud import ndb

from beam_jobs.export import after_state
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
                 namespace: Optional[str] = '', validate: bool = True):
        super().__init__(file_pattern,
                         compression_type=CompressionTypes.UNCOMPRESSED,
                         splittable=True, validate=validate)
        self._decoder = decode.EntityDecoder(project, kinds, namespace)

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
                 namespace: Optional[str]):
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
                 kinds: Optional[Iterable[str]], namespace: Optional[str],
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


KindOrModel = Union[str, Type[ndb.Model]]


def _kind(kind_or_model: KindOrModel) -> str:
    if isinstance(kind_or_model, str):
        return kind_or_model
    if isinstance(kind_or_model, type) and issubclass(kind_or_model, ndb.Model):
        return kind_or_model._get_kind()  # pylint: disable=protected-access
    raise TypeError(
        f'ReadExport takes kind names or ndb model classes, not '
        f'{kind_or_model!r}.')


class ReadExport(beam.PTransform):
    """pbegin → the Beam entities of `kinds_or_models` in a managed export.

    `path`: the export's `.overall_export_metadata` file or the folder that
    holds it (local or `gs://`), or a rehearsal's after state
    (after_state.py), read as its base with the writes applied. `namespace`
    None reads the default namespace, as a Datastore read with no namespace
    does. `project` None
    puts keys in the export's own project (its app id without an `s~`/`e~`
    prefix). The export and the kinds are checked here, when the pipeline is
    built, so a wrong path or kind fails before anything runs; but a full
    export (every kind in one folder) does not list its kinds, so there a
    kind it lacks reads as no entities.
    """

    def __init__(self, path: str, kinds_or_models: Iterable[KindOrModel],
                 project: Optional[str] = None,
                 namespace: Optional[str] = None):
        super().__init__()
        if isinstance(kinds_or_models, (str, type)):
            kinds_or_models = [kinds_or_models]
        kinds = [_kind(item) for item in kinds_or_models]
        if not kinds:
            raise ValueError('ReadExport needs at least one kind to read.')
        self._after = None
        if after_state.is_after_state(path):
            # A rehearsal's after state: its base, with the writes applied.
            self._after = after_state.ReadAfterState(
                after_state.read(path), kinds, project, namespace)
            self._info, self._project = self._after.info, self._after.project
            return
        self._info = metadata.read_export_info(path)
        self._namespace = namespace or ''
        # Each folder is read once, for every kind wanted from it.
        folders = collections.defaultdict(list)
        for kind in dict.fromkeys(kinds):
            folders[self._info.entity_set(kind, self._namespace).folder].append(kind)
        # An empty set may have no data file at all: nothing to read there.
        self._folders = {folder: kinds for folder, kinds in folders.items()
                         if metadata.data_files(folder)}
        if project is None:
            app = self._info.app_id()
            project = decode.project_of_app(app) if app else None
        self._project = project

    @property
    def info(self) -> metadata.ExportInfo:
        return self._info

    @property
    def project(self) -> Optional[str]:
        """The project the entities' keys are put in."""
        return self._project

    def data_files(self) -> Optional[list[str]]:
        """The data files this read reads (None for an after state)."""
        if self._after is not None:
            return None
        return [path for folder in self._folders
                for path in metadata.data_files(folder)]

    def expand(self, pbegin):
        if self._after is not None:
            return pbegin | 'Read after state' >> self._after
        if not self._folders:
            return pbegin | 'No entities' >> beam.Create([])
        if len(self._folders) > 1:   # one kind a folder: every file in one read
            kinds = {kind for kinds in self._folders.values() for kind in kinds}
            return pbegin | 'Read folders' >> ReadFiles(
                self.data_files(), self._project, sorted(kinds), self._namespace)
        [(folder, kinds)] = self._folders.items()
        source = ExportFileSource(FileSystems.join(folder, 'output-*'),
                                  self._project, kinds, self._namespace)
        label = folder.rstrip('/').rsplit('/', 2)
        return pbegin | f'Read {"/".join(label[-2:])}' >> beam.io.Read(source)
