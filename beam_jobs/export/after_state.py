"""A rehearsal's after state: an export with a job's writes applied.

Copying a production export to apply a migration's writes would cost what
the export costs. An after state costs what the writes cost: it is a folder
beside nothing but the writes,

    AFTER/after_state.json    the manifest: the base it applies to, the run
                              that wrote it, its writes per kind
    AFTER/puts/part-*         the entities the job put (EntityProto records)
    AFTER/deletes/part-*      the keys it deleted (key-only EntityProtos)

and reading it (`ReadAfterState`, which `ReadExport` uses for such a path)
gives the base's entities minus every key the job put or deleted, plus what
it put. The base is an export or another after state, so after states chain:
"what production would look like after job A, then job B".
"""

from __future__ import annotations

import dataclasses
import json
from typing import Iterable, Optional, Sequence

import apache_beam as beam
from apache_beam import coders
from apache_beam.io import filebasedsink
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_jobs.export import encode
from beam_jobs.export import records

MANIFEST = 'after_state.json'
PUTS, DELETES = 'puts', 'deletes'


class AfterStateError(ValueError):
    """An after state that cannot be read (or written where asked)."""


@dataclasses.dataclass(frozen=True)
class AfterState:
    folder: str
    base: str
    run_id: Optional[str]
    job_name: Optional[str]
    writes: dict   # {'put': {kind: n}, 'delete': {kind: n}}

    def files(self, what: str) -> list[str]:
        [match] = FileSystems.match([FileSystems.join(self.folder, what, 'part-*')])
        return sorted(found.path for found in match.metadata_list)


def _manifest_path(path: str) -> str:
    path = path.rstrip('/')
    return path if path.endswith(MANIFEST) else FileSystems.join(path, MANIFEST)


def is_after_state(path: str) -> bool:
    try:
        return FileSystems.exists(_manifest_path(path))
    except Exception:  # pylint: disable=broad-except
        return False


def read(path: str) -> AfterState:
    """The after state at `path` (its folder or its manifest)."""
    manifest = _manifest_path(path)
    try:
        with FileSystems.open(manifest, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            data = json.loads(f.read().decode('utf-8'))
        return AfterState(folder=FileSystems.split(manifest)[0], base=data['base'],
                          run_id=data.get('run_id'), job_name=data.get('job'),
                          writes=data.get('writes') or {})
    except (OSError, ValueError, KeyError) as error:
        raise AfterStateError(
            f'The after state manifest {manifest} cannot be read ({error}): '
            'rehearse again to write a new after state.') from error


def finish(folder: str, base: str, run_id: str, job_name: str,
           writes: dict) -> str:
    """Write the manifest once the run that wrote the folder has completed;
    an after state without one (its run failed) is not readable."""
    manifest = FileSystems.join(folder, MANIFEST)
    with FileSystems.create(manifest, mime_type='application/json',
                            compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(json.dumps({'base': base, 'run_id': run_id, 'job': job_name,
                            'writes': writes}, indent=2, sort_keys=True).encode())
    return folder


class _RecordFile:
    """An open shard of a sink: LevelDB log records on Beam's file handle."""

    def __init__(self, handle):
        self._handle = handle
        self.writer = records.RecordWriter(handle)

    def close(self) -> None:
        self._handle.close()


class _RecordSink(filebasedsink.FileBasedSink):
    """Beam's sharded, atomically finalised file writing, of our records."""

    def __init__(self, prefix: str):
        super().__init__(prefix, coder=coders.BytesCoder(), file_name_suffix='',
                         num_shards=0, shard_name_template='-SSSSS-of-NNNNN',
                         mime_type='application/octet-stream',
                         compression_type=CompressionTypes.UNCOMPRESSED)

    def open(self, temp_path):
        return _RecordFile(super().open(temp_path))

    def write_encoded_record(self, file_handle, encoded_value):
        file_handle.writer.write(encoded_value)


def _key_only(key) -> bytes:
    from apache_beam.io.gcp.datastore.v1new import types as beam_types
    return encode.encode(beam_types.Entity(key))


class WriteAfterState(beam.PTransform):
    """A run's writes (`(op, kind, entity or key)`) into an after state's files."""

    def __init__(self, folder: str):
        super().__init__()
        self._folder = folder

    def expand(self, writes):
        puts = (writes
                | 'Puts' >> beam.FlatMap(lambda w: [w[2]] if w[0] == 'put' else [])
                | 'Encode puts' >> beam.Map(encode.encode))
        deletes = (writes
                   | 'Deletes' >> beam.FlatMap(lambda w: [w[2]] if w[0] == 'delete' else [])
                   | 'Encode deletes' >> beam.Map(_key_only))
        _ = puts | 'Write puts' >> beam.io.Write(
            _RecordSink(FileSystems.join(self._folder, PUTS, 'part')))
        _ = deletes | 'Write deletes' >> beam.io.Write(
            _RecordSink(FileSystems.join(self._folder, DELETES, 'part')))
        return writes.pipeline


def base_export(path: str) -> str:
    """The export at the bottom of a chain of after states."""
    while is_after_state(path):
        path = read(path).base
    return path


def _base_info(path: str):
    from beam_jobs.export.metadata import read_export_info
    return read_export_info(base_export(path))


def holds(path: str, kind: str, namespace: Optional[str]) -> bool:
    """Whether reading `path` (an export or an after state) can give `kind`:
    the export holds it, or some after state in the chain put it."""
    from beam_jobs.export.metadata import ExportError
    while is_after_state(path):
        state = read(path)
        if (state.writes.get('put') or {}).get(kind):
            return True
        path = state.base
    try:
        _base_info(path).entity_set(kind, namespace)
    except ExportError:
        return False
    return True


def _identity(entity) -> tuple:
    key = entity.key
    return (key.namespace or '', tuple(key.path_elements))


class _DropChanged(beam.DoFn):
    """Keeps the base entities whose key the job neither put nor deleted."""

    def process(self, entity, changed):
        if _identity(entity) not in changed:
            yield entity


class ReadAfterState(beam.PTransform):
    """pbegin → the after state's entities of `kinds` (see the module doc)."""

    def __init__(self, state: AfterState, kinds: Sequence[str],
                 project: Optional[str], namespace: Optional[str]):
        super().__init__()
        from beam_jobs.export.source import ReadExport  # a base may be either
        self._state = state
        # The job may have put kinds its base never held: read those from
        # the puts alone.
        held = [kind for kind in kinds if holds(state.base, kind, namespace)]
        self._base = ReadExport(state.base, held, project, namespace) if held else None
        self._base_info = self._base.info if self._base else _base_info(state.base)
        self._project = project or (self._base.project if self._base else None)
        self._kinds = list(kinds)
        self._namespace = namespace or ''

    @property
    def info(self):
        """The metadata of the export at the bottom of the chain."""
        return self._base_info

    @property
    def project(self) -> Optional[str]:
        return self._project

    def _read(self, pbegin, label: str, files: Iterable[str],
              kinds: Optional[Sequence[str]], namespace: Optional[str]):
        from beam_jobs.export.source import ExportFileSource
        reads = [pbegin | f'{label} {index}' >> beam.io.Read(ExportFileSource(
                    path, self._project, kinds, namespace))
                 for index, path in enumerate(files)]
        if not reads:
            return pbegin | f'No {label.lower()}' >> beam.Create([])
        return reads | f'{label} together' >> beam.Flatten()

    def expand(self, pbegin):
        written = self._state.files(PUTS) + self._state.files(DELETES)
        changed = (
            self._read(pbegin, 'Written keys', written, None, None)
            | 'Identity' >> beam.Map(_identity)
            | 'Changed keys' >> beam.combiners.ToList()
            | 'As a set' >> beam.Map(frozenset))
        base = (pbegin | 'Read base' >> self._base if self._base
                else pbegin | 'No base' >> beam.Create([]))
        kept = base | 'Drop changed' >> beam.ParDo(
            _DropChanged(), beam.pvalue.AsSingleton(changed))
        puts = self._read(pbegin, 'Put entities', self._state.files(PUTS),
                          self._kinds, self._namespace)
        return (kept, puts) | 'Base and puts' >> beam.Flatten()
