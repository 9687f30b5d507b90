"""A rehearsal's after state: an export with a job's writes applied.

Copying a production export to apply a migration's writes would cost what
the export costs. An after state costs what the writes cost: it is a folder
beside nothing but the writes,

    AFTER/after_state.json    the manifest: the base it applies to, the run
                              that wrote it, its writes per kind, and the
                              files that hold them
    AFTER/puts/part-*         the entities the job put (EntityProto records)
    AFTER/deletes/part-*      the keys it deleted (key-only EntityProtos)

and reading it (`ReadAfterState`, which `ReadExport` uses for such a path)
gives the base's entities minus every key the job put or deleted, plus what
it put. The base is an export or another after state, so after states chain:
"what production would look like after job A, then job B".

The files are written by Beam's file sink (`beam.io.Write` of a
FileBasedSink), whichever runner runs the job: each bundle writes a
temporary file, and only the bundles the runner committed are renamed into
place when the write finalises, so a bundle Dataflow retried, or split by
dynamic work rebalancing, is never written twice and none is lost. The
manifest, written once the run has completed, names the files it found;
readers read those, never a stray file left beside them.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Optional, Sequence

import apache_beam as beam
from apache_beam import coders
from apache_beam.io import filebasedsink
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.gcp.datastore.v1new import types as beam_types

from beam_jobs import refusals
from beam_jobs.export import encode
from beam_jobs.export import files as files_lib
from beam_jobs.export import metadata
from beam_jobs.export import records

MANIFEST = 'after_state.json'
PUTS, DELETES = 'puts', 'deletes'


class AfterStateError(refusals.Refused):
    """An after state that cannot be read (or written where asked)."""


@dataclasses.dataclass(frozen=True)
class AfterState:
    folder: str
    base: str
    run_id: Optional[str]
    job_name: Optional[str]
    writes: dict   # {'put': {kind: n}, 'delete': {kind: n}}
    # {'puts': [names], 'deletes': [names]} as the manifest lists them
    # (None in a manifest written before it listed its files).
    listed: Optional[dict] = None

    def files(self, what: str) -> list[str]:
        if self.listed is not None:
            return [FileSystems.join(self.folder, what, name)
                    for name in self.listed.get(what) or []]
        return _found(self.folder, what)


def _found(folder: str, what: str) -> list[str]:
    """The finalised files of `what` (puts, deletes) in `folder`."""
    [match] = FileSystems.match([FileSystems.join(folder, what, 'part-*')])
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
                          writes=data.get('writes') or {}, listed=data.get('files'))
    except (OSError, ValueError, KeyError) as error:
        raise AfterStateError(
            f'The after state manifest {manifest} cannot be read ({error}): '
            'rehearse again to write a new after state.') from error


def finish(folder: str, base: str, run_id: str, job_name: str,
           writes: dict) -> str:
    """Write the manifest once the run that wrote the folder has completed
    (its sink has finalised its files); an after state without one (its run
    failed) is not readable. Writing it again writes the same manifest."""
    manifest = FileSystems.join(folder, MANIFEST)
    listed = {what: [FileSystems.split(path)[1] for path in _found(folder, what)]
              for what in (PUTS, DELETES)}
    with FileSystems.create(manifest, mime_type='application/json',
                            compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(json.dumps({'base': base, 'run_id': run_id, 'job': job_name,
                            'writes': writes, 'files': listed},
                           indent=2, sort_keys=True).encode())
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


def sink(folder: str, what: str) -> filebasedsink.FileBasedSink:
    """The sink of an after state's `what` (PUTS, DELETES): encoded records
    into `folder/what/part-SSSSS-of-NNNNN`, whichever runner writes them."""
    return _RecordSink(FileSystems.join(folder, what, 'part'))


def _key_only(key) -> bytes:
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
        _ = puts | 'Write puts' >> beam.io.Write(sink(self._folder, PUTS))
        _ = deletes | 'Write deletes' >> beam.io.Write(sink(self._folder, DELETES))
        return writes.pipeline


def base_export(path: str) -> str:
    """The export at the bottom of a chain of after states."""
    while is_after_state(path):
        path = read(path).base
    return path


def _base_info(path: str) -> metadata.ExportInfo:
    return metadata.read_export_info(base_export(path))


def holds(path: str, kind: str, namespace: Optional[str]) -> bool:
    """Whether reading `path` (an export or an after state) can give `kind`:
    the export holds it, or some after state in the chain put it."""
    while is_after_state(path):
        state = read(path)
        if (state.writes.get('put') or {}).get(kind):
            return True
        path = state.base
    try:
        _base_info(path).entity_set(kind, namespace)
    except metadata.ExportError:
        return False
    return True


def _identity(entity) -> tuple:
    key = entity.key
    return (key.namespace or '', tuple(key.path_elements))


class _KeepCurrent(beam.DoFn):
    """`(file, entity)` → the entity, if no layer above the file's changed it.

    Layer 0 is the export, layer i the i-th after state up the chain; the
    side input maps each written key to the highest layer that put or
    deleted it. A put is kept by its own layer; an older entity is not.
    """

    def __init__(self, file_layers: dict):
        self._file_layers = file_layers

    def process(self, read, last_changed):
        path, entity = read
        changed_in = last_changed.get(_identity(entity))
        if changed_in is None or changed_in <= self._file_layers[path]:
            yield entity


def _last_changes(changes) -> dict:
    last: dict = {}
    for identity, layer in changes:
        if layer > last.get(identity, -1):
            last[identity] = layer
    return last


class ReadAfterState(beam.PTransform):
    """pbegin → the after state's entities of `kinds` (see the module doc).

    Every file of the chain (the export's, each after state's puts) is read
    by one transform (files.ReadFiles), and the entities no later layer
    changed are kept in the same stage, so the map step runs there too.
    """

    def __init__(self, state: AfterState, kinds: Sequence[str],
                 project: Optional[str], namespace: Optional[str]):
        super().__init__()
        # Bottom up: the after states of the chain, then the export below.
        self._layers = [state]
        while is_after_state(self._layers[0].base):
            self._layers.insert(0, read(self._layers[0].base))
        export = self._layers[0].base
        # The job may have put kinds the export never held: those come from
        # the puts alone.
        held = [kind for kind in kinds if holds(export, kind, namespace)]
        self._export = (files_lib.Selection(export, held, project, namespace)
                        if held else None)
        self._base_info = self._export.info if self._export else _base_info(export)
        self._project = project or (self._export.project if self._export else None)
        self._kinds = list(kinds)
        self._namespace = namespace or ''

    @property
    def info(self):
        """The metadata of the export at the bottom of the chain."""
        return self._base_info

    @property
    def project(self) -> Optional[str]:
        return self._project

    def _read(self, pbegin, label: str, files: Sequence[str],
              kinds: Optional[Sequence[str]], namespace: Optional[str]):
        """`(file, entity)` of every entity in `files`, by one transform."""
        return pbegin | label >> files_lib.ReadFiles(
            files, self._project, kinds, namespace, with_filename=True)

    def expand(self, pbegin):
        written, file_layers = {}, {}
        for path in (self._export.data_files() if self._export else []):
            file_layers[path] = 0
        for layer, state in enumerate(self._layers, start=1):
            for path in state.files(PUTS):
                file_layers[path] = written[path] = layer
            for path in state.files(DELETES):
                written[path] = layer
        last_changed = (
            self._read(pbegin, 'Written keys', list(written), None, None)
            | 'Identity and layer' >> beam.Map(
                lambda read, layers: (_identity(read[1]), layers[read[0]]), written)
            | 'Changed keys' >> beam.combiners.ToList()
            | 'Last change' >> beam.Map(_last_changes))
        return (self._read(pbegin, 'Entities', list(file_layers), self._kinds,
                           self._namespace)
                | 'Keep current' >> beam.ParDo(
                    _KeepCurrent(file_layers), beam.pvalue.AsSingleton(last_changed)))
