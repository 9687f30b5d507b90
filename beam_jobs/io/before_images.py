"""Before-images: what every key a run writes held just before it was written.

A migration that writes production data keeps, for each entity it puts or
deletes, its value just before the write, so the run can be taken back
(`beam-jobs revert`) and a run that stopped midway finished
(`run --retry-failed`). A backup is a folder, local or `gs://`:

    BACKUP/default_namespace/kind_K/output-N   before-images of kind K, as a
                                               managed export stores entities
    BACKUP/failed/N.jsonl                      the keys whose map failed (for
                                               `run --retry-failed`)
    BACKUP/keys/N.jsonl                        one line per write of chunk N:
                                               the key, the op, where its
                                               before-image is (or `absent`),
                                               the digest of what was written
    BACKUP/RUN_ID.overall_export_metadata      written when the run ends, so
    BACKUP/backup.json                         the folder reads as an export
                                               (`--export`, `emulator import`),
                                               and the manifest: kinds, counts,
                                               files with their sizes and
                                               sha256

**Ahead of the writes.** `KeepBeforeImages` sits between a job's writes and
the sink: it gathers a chunk of writes, looks up (in one batch) the keys whose
before-image it does not hold yet, writes the chunk's files and closes them,
and only then lets the chunk's writes go on to the sink. A write therefore
never reaches the Datastore before its before-image is stored, on any runner.
Most migrations put the very entity they read: the map step hands that
entity along (`before`), so it costs no read.

**Retries.** A bundle the runner retries may already have committed some of
its writes, so its files are never dropped: every chunk keeps its own files
(N is unique), and readers take, per key, the earliest before-image and the
latest digest (`Entries.resolve`).

**Digests** compare content, not encoding (`digest`): property names and
values, nested entities and keys, not meanings or which values are indexed,
so an entity read back from the Datastore has the digest of what was put.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import json
import random
import time
from typing import Any, BinaryIO, Iterable, Iterator, Optional, Unpack

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.gcp.datastore.v1new import types as beam_types
from apache_beam.transforms.window import GlobalWindows
from apache_beam.utils.windowed_value import WindowedValue
from google.cloud import datastore
from google.cloud.datastore import helpers
from google.cloud.datastore.helpers import GeoPoint

from beam_jobs import refusals
from beam_jobs import target as target_lib
from beam_jobs.export import encode
from beam_jobs.export import records
from beam_jobs.export import writer
from beam_jobs.lean_models import ENTITY_PB, KEY_PB, EntityPb, flat_path_of

ABSENT = 'absent'            # the before-image of a key that did not exist
MANIFEST = 'backup.json'
KEYS = 'keys'
FAILED = 'failed'
# A chunk: at most this many writes, or this many bytes of before-images,
# whichever comes first. Each chunk is one commit of its files (on Cloud
# Storage, one object per kind and one keys file).
CHUNK_WRITES = 500
CHUNK_BYTES = 8 << 20
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_MICROSECOND = datetime.timedelta(microseconds=1)

# A key as this module compares and stores keys, whatever its shape:
# `(namespace, (kind, id_or_name, ...))`, '' for the default namespace.
Identity = tuple[str, tuple[Any, ...]]
# A job's write: `(op, kind, entity or key)` ('put' or 'delete'), and when
# the run keeps a backup also `before` and `source` (KeepBeforeImagesFn).
Write = tuple[str, str, Any, Unpack[tuple[Any, ...]]]


class BackupError(refusals.Refused):
    """A backup that is missing, damaged, or cannot be written where asked."""


# Keys and digests.

def identity(key: Any) -> Identity:
    """`(namespace, (kind, id_or_name, ...))` of any key shape this project
    meets: a key protobuf, a client key, a Beam key."""
    if isinstance(key, KEY_PB):
        return (key.partition_id.namespace_id or '', tuple(flat_path_of(key)))
    if isinstance(key, datastore.Key):
        return (key.namespace or '', tuple(key.flat_path))
    if isinstance(key, beam_types.Key):
        return (key.namespace or '', tuple(key.path_elements))
    raise TypeError(f'Not a Datastore key: {key!r}')


def key_text(ident: Identity) -> str:
    """`Kind/id[/Kind/id]` (and `@namespace`), as lines name a key."""
    namespace, flat = ident
    path = '/'.join(f'{flat[i]}/{flat[i + 1]}' for i in range(0, len(flat), 2))
    return f'{path}@{namespace}' if namespace else path


def client_entity(entity: Any) -> Optional[datastore.Entity]:
    """An entity of any shape as a client entity (None stays None)."""
    if entity is None or entity == ABSENT:
        return None
    decoded: datastore.Entity
    if isinstance(entity, EntityPb):
        decoded = helpers.entity_from_protobuf(entity.pb)
    elif isinstance(entity, ENTITY_PB):
        decoded = helpers.entity_from_protobuf(entity)
    else:
        decoded = encode.client_entity(entity)
    return decoded


def _canonical(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return ['b', value]
    if isinstance(value, int):
        return ['i', str(value)]
    if isinstance(value, float):
        return ['f', repr(value)]
    if isinstance(value, bytes):
        return ['y', hashlib.sha256(value).hexdigest()]
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return ['t', (value - _EPOCH) // _MICROSECOND]
    if isinstance(value, GeoPoint):
        return ['g', value.latitude, value.longitude]
    if isinstance(value, (datastore.Key, beam_types.Key)):
        return ['k', *identity(value)[0:1], list(identity(value)[1])]
    if isinstance(value, beam_types.Entity):
        value = value.to_client_entity()
    if isinstance(value, dict):    # a client entity (embedded) or a plain dict
        key = getattr(value, 'key', None)
        return ['e', _canonical(key) if key is not None and not key.is_partial else None,
                [[name, _canonical(value[name])] for name in sorted(value)]]
    if isinstance(value, (list, tuple)):
        return ['l', [_canonical(item) for item in value]]
    return ['?', repr(value)]


def digest(entity: Any) -> str:
    """What an entity holds, as a short text: ABSENT for none."""
    entity = client_entity(entity)
    if entity is None:
        return ABSENT
    text = json.dumps(_canonical(entity), separators=(',', ':'))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# Where a backup is, and what one chunk writes.

def run_folder(location: str, run_id: str) -> str:
    """The backup of one run under a backup location."""
    return FileSystems.join(location, run_id)


def set_folder(ident: Identity) -> str:
    namespace, flat = ident
    return writer.set_folder(flat[-2], namespace or None)


_last_chunk_number = [0]


def _new_chunk_number() -> int:
    """Unique across workers and retries (nanoseconds, then six random
    digits), and increasing within a process, so chunks sort in the order
    they were written."""
    number = time.time_ns() * 1_000_000 + random.randint(0, 999_999)
    number = max(number, _last_chunk_number[0] + 1)
    _last_chunk_number[0] = number
    return number


def _create(path: str, mime: str = 'application/octet-stream') -> BinaryIO:
    return FileSystems.create(path, mime_type=mime,
                              compression_type=CompressionTypes.UNCOMPRESSED)


class _HashingStream:
    """Counts and hashes what is written through it."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.sha256.update(data)
        self.size += len(data)
        self._stream.write(data)


def write_chunk(location: str, writes: list[Write], befores: list[Any],
                written_digests: list[str], sources: list[Optional[Identity]]) -> int:
    """The files of one chunk: before-images (one export data file per kind
    and namespace) and the keys file. Returns the chunk's number.

    `befores[i]` is the before-image of `writes[i]` (an entity, or ABSENT).
    """
    number = _new_chunk_number()
    encoded: dict[str, list[bytes]] = {}
    lines = []
    for write, before, wrote, source in zip(writes, befores, written_digests, sources):
        ident = identity(_key_of(write))
        image = None
        if before != ABSENT:
            folder = set_folder(ident)
            in_folder = encoded.setdefault(folder, [])
            image = [folder, len(in_folder)]
            in_folder.append(encode.encode(client_entity(before)))
        line = {'ns': ident[0], 'key': list(ident[1]), 'op': write[0],
                'image': image, 'wrote': wrote}
        if source is not None and source != ident:
            line['from'] = [source[0], list(source[1])]
        lines.append(line)
    files = {}
    for folder, encoded_records in encoded.items():
        relative = f'{folder}/output-{number}'
        with _create(FileSystems.join(location, relative)) as stream:
            hashing = _HashingStream(stream)
            record_writer = records.RecordWriter(hashing)  # type: ignore[arg-type]  # writes only
            for record in encoded_records:
                record_writer.write(record)
        files[relative] = {'bytes': hashing.size, 'sha256': hashing.sha256.hexdigest(),
                           'records': len(encoded_records)}
    header = {'chunk': number, 'at_msec': int(time.time() * 1000), 'files': files}
    with _create(FileSystems.join(location, KEYS, f'{number}.jsonl'),
                 'application/json') as stream:
        stream.write((json.dumps(header) + '\n').encode())
        for line in lines:
            stream.write((json.dumps(line) + '\n').encode())
    return number


def _key_of(write: Write) -> Any:
    item = write[2]
    return item.key if isinstance(item, (beam_types.Entity, datastore.Entity)) else item


def _client_key(key: Any, client: datastore.Client) -> datastore.Key:
    """A client key of any key shape, or of an identity, in `client`'s
    database (Beam's and ndb's keys know none)."""
    if isinstance(key, beam_types.Key):
        key = key.to_client_key()
    if isinstance(key, datastore.Key) and key.database == client.database:
        return key
    namespace, flat = key if isinstance(key, tuple) else identity(key)
    client_key: datastore.Key = client.key(*flat, namespace=namespace or None)
    return client_key


class KeepBeforeImagesFn(beam.DoFn):
    """Writes → the same writes, each let through only once its chunk's
    before-images are stored (see the module docstring).

    A write is `(op, kind, entity or key, before, source)`: `before` is the
    entity as the run read it when the write is of that very key, ABSENT
    when known not to exist, None when it must be looked up; `source` the
    identity of the entity whose map yielded it.
    """

    def __init__(self, location: str, target: target_lib.Target):
        # Beam's DoFn.__init__ is untyped, and untyped_calls_exclude misses super().
        super().__init__()  # type: ignore[no-untyped-call]
        self._location = location
        self._target = target

    def setup(self) -> None:
        self._client = target_lib.client(self._target)

    def start_bundle(self) -> None:
        self._chunk: list[Write] = []
        self._bytes = 0

    # Types in a comment: Beam would take annotations here as its type hints.
    def process(self, write):  # type: (Write) -> Iterator[Write]
        self._chunk.append(write)
        before = write[3] if len(write) > 3 else None
        if isinstance(before, EntityPb):
            self._bytes += before.pb.ByteSize()
        if len(self._chunk) >= CHUNK_WRITES or self._bytes >= CHUNK_BYTES:
            yield from self._flush()

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for write in self._flush():
            yield GlobalWindows.windowed_value(write)

    def _flush(self) -> list[Write]:
        chunk, self._chunk, self._bytes = self._chunk, [], 0
        if not chunk:
            return []
        befores = [write[3] if len(write) > 3 else None for write in chunk]
        missing = [i for i, before in enumerate(befores) if before is None]
        if missing:
            keys = [_client_key(_key_of(chunk[i]), self._client) for i in missing]
            found = {identity(entity.key): entity
                     for entity in self._client.get_multi(keys)}
            for i, key in zip(missing, keys):
                befores[i] = found.get(identity(key), ABSENT)
        wrote = [digest(write[2]) if write[0] == 'put' else ABSENT for write in chunk]
        sources = [write[4] if len(write) > 4 else None for write in chunk]
        write_chunk(self._location, chunk, befores, wrote, sources)
        return chunk


class KeepBeforeImages(beam.PTransform[beam.PCollection[Write], beam.PCollection[Write]]):
    """Writes → the same writes, after their before-images are stored."""

    def __init__(self, location: str, target: target_lib.Target):
        super().__init__()
        self._location = location
        self._target = target

    def display_data(self) -> dict[str, Any]:
        return {'backup_location': self._location}

    # Types in a comment: Beam would take annotations here as its type hints.
    def expand(self, writes):  # type: (beam.PCollection[Write]) -> beam.PCollection[Write]
        stored: beam.PCollection[Write] = writes | 'Store before-images' >> beam.ParDo(
            KeepBeforeImagesFn(self._location, self._target))
        return stored


class _KeepFailedKeysFn(beam.DoFn):
    """Identities of entities whose map failed → one file per bundle."""

    def __init__(self, location: str):
        # Beam's DoFn.__init__ is untyped, and untyped_calls_exclude misses super().
        super().__init__()  # type: ignore[no-untyped-call]
        self._location = location

    def start_bundle(self) -> None:
        self._keys: list[Identity] = []

    # Types in a comment: Beam would take annotations here as its type hints.
    def process(self, ident):  # type: (Identity) -> None
        self._keys.append(ident)

    def finish_bundle(self) -> None:
        if not self._keys:
            return
        path = FileSystems.join(self._location, FAILED, f'{_new_chunk_number()}.jsonl')
        with _create(path, 'application/json') as stream:
            for namespace, flat in self._keys:
                stream.write((json.dumps({'ns': namespace, 'key': list(flat)}) + '\n').encode())
        self._keys = []


class KeepFailedKeys(beam.PTransform[beam.PCollection[Identity], beam.PCollection[None]]):
    """The keys whose map failed, kept with the run's backup (not parsed
    back from the output's text) so `run --retry-failed` can read them."""

    def __init__(self, location: str):
        super().__init__()
        self._location = location

    # Types in a comment: Beam would take annotations here as its type hints.
    def expand(self, failed_keys):  # type: (beam.PCollection[Identity]) -> beam.PCollection[None]
        kept: beam.PCollection[None] = failed_keys | 'Keep failed keys' >> beam.ParDo(
            _KeepFailedKeysFn(self._location)).with_output_types(None)
        return kept


def failed_keys(location: str) -> list[Identity]:
    """Every key whose map failed in the run whose backup this is (each
    once, in key order)."""
    try:
        [match] = FileSystems.match([FileSystems.join(location, FAILED, '*.jsonl')])
        paths = [found.path for found in match.metadata_list]
    except Exception:  # pylint: disable=broad-except
        paths = []
    keys: set[Identity] = set()
    for path in paths:
        for text in _read_text(path).splitlines():
            line = json.loads(text)
            keys.add((line['ns'], tuple(line['key'])))
    return sorted(keys, key=repr)


def written_by_source(location: str) -> dict[Identity, list[tuple[Identity, str]]]:
    """Per entity a run mapped and wrote from: `[(key written, digest of
    what was written last)]`. A run that stopped midway is finished by
    mapping again only the entities whose writes are not all there."""
    done: dict[Identity, list[tuple[Identity, str]]] = {}
    for _, last in resolve(read_chunks(location)).values():
        source = last.source or last.ident
        done.setdefault(source, []).append((last.ident, last.wrote))
    return done


class SkipWrittenFn(beam.DoFn):
    """Entities as read → those a stopped run has not finished writing.

    An entity is skipped when every key the stopped run wrote from it holds
    now exactly what that run wrote (its digest): mapping it again would
    write the same. Written keys other than the entity itself are looked up.
    """

    def __init__(self, location: str, target: target_lib.Target):
        # Beam's DoFn.__init__ is untyped, and untyped_calls_exclude misses super().
        super().__init__()  # type: ignore[no-untyped-call]
        self._location = location
        self._target = target

    def setup(self) -> None:
        self._done = written_by_source(self._location)
        self._client = target_lib.client(self._target)
        self._skipped = beam.metrics.Metrics.counter('beam_jobs', 'retry_skipped')

    # Types in a comment: Beam would take annotations here as its type hints.
    def process(self, element):  # type: (Any) -> Iterator[Any]
        source = identity(element.key)
        writes = self._done.get(source)
        if writes and all(self._holds(source, element, written, wrote)
                          for written, wrote in writes):
            self._skipped.inc()
            return
        yield element

    def _holds(self, source: Identity, element: Any, written: Identity, wrote: str) -> bool:
        if written == source:
            return digest(element) == wrote
        current = self._client.get(_client_key(written, self._client))
        return digest(current) == wrote


# Reading a backup back.

@dataclasses.dataclass
class Entry:
    """One write a run made, as its backup keeps it."""

    ident: Identity
    op: str
    image: Optional[tuple[str, int]]     # (folder, index) in its chunk, None: absent
    wrote: str
    chunk: int
    source: Optional[Identity] = None

    @property
    def was_absent(self) -> bool:
        return self.image is None


def check_writable(location: str) -> None:
    """Refuse, before anything is written, a location no file can go to."""
    probe = FileSystems.join(location, '.writable')
    try:
        with _create(probe) as stream:
            stream.write(b'ok')
        FileSystems.delete([probe])
    except Exception as error:  # pylint: disable=broad-except
        raise BackupError(
            f'The backup location {location} cannot be written ({error}): '
            'pass a writable --backup_location (or set backup_location), or '
            '--no-backup to run without before-images.') from error


def keys_path(location: str, name: str) -> str:
    return FileSystems.join(location, KEYS, name)


def _keys_files(location: str) -> list[str]:
    try:
        [match] = FileSystems.match([FileSystems.join(location, KEYS, '*.jsonl')])
    except Exception:  # pylint: disable=broad-except
        return []
    return sorted(found.path for found in match.metadata_list)


def _read_text(path: str) -> str:
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read().decode('utf-8')


def read_chunk_keys(path: str) -> tuple[dict[str, Any], list[Entry]]:
    """A keys file: its header and its entries."""
    try:
        lines = _read_text(path).splitlines()
        header = json.loads(lines[0])
        entries = []
        for text in lines[1:]:
            line = json.loads(text)
            source = line.get('from')
            entries.append(Entry(
                ident=(line['ns'], tuple(line['key'])), op=line['op'],
                image=tuple(line['image']) if line['image'] else None,
                wrote=line['wrote'], chunk=header['chunk'],
                source=(source[0], tuple(source[1])) if source else None))
    except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
        raise BackupError(f'The backup keys file {path} is damaged ({error}).') from error
    return header, entries


@dataclasses.dataclass
class Chunk:
    number: int
    keys_file: str
    files: dict[str, dict[str, Any]]     # relative path → {'bytes', 'sha256', 'records'}
    entries: list[Entry]


def read_chunks(location: str) -> list[Chunk]:
    chunks = []
    for path in _keys_files(location):
        header, entries = read_chunk_keys(path)
        chunks.append(Chunk(header['chunk'], path, header.get('files') or {}, entries))
    return sorted(chunks, key=lambda chunk: chunk.number)


def read_chunk(location: str, number: int) -> Chunk:
    path = FileSystems.join(location, KEYS, f'{number}.jsonl')
    header, entries = read_chunk_keys(path)
    return Chunk(header['chunk'], path, header.get('files') or {}, entries)


def chunk_images(location: str, chunk: Chunk) -> dict[str, list[bytes]]:
    """The encoded before-images of a chunk, by folder."""
    images = {}
    for relative in chunk.files:
        path = FileSystems.join(location, relative)
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            images[relative.rsplit('/', 1)[0]] = [
                record for _, record in records.read_records(f, path)]
    return images


def resolve(chunks: Iterable[Chunk]) -> dict[Identity, tuple[Entry, Entry]]:
    """Per key written, `(first, last)`: the first entry holds the true
    before-image (a retried bundle's second attempt read what the first had
    already written), the last what the run left there."""
    seen: dict[Identity, tuple[Entry, Entry]] = {}
    for chunk in sorted(chunks, key=lambda c: c.number):
        for entry in chunk.entries:
            first = seen.get(entry.ident, (entry, entry))[0]
            seen[entry.ident] = (first, entry)
    return seen


# The manifest, once the run has ended.

@dataclasses.dataclass
class Manifest:
    location: str
    run_id: str
    job_name: str
    project: Optional[str]
    namespace: Optional[str]
    run_status: str
    kinds: dict[str, dict[str, int]]     # kind → {'put', 'delete', 'images', 'absent'}
    files: dict[str, dict[str, Any]]     # relative path → {'bytes', 'sha256', 'records'}
    chunks: list[str]                    # keys file names
    writes: int
    at_msec: int
    export: Optional[str] = None    # the .overall_export_metadata path

    def describe(self) -> dict[str, Any]:
        """What a run record keeps of it."""
        return {'location': self.location, 'kinds': self.kinds, 'writes': self.writes,
                'files': len(self.files) + len(self.chunks), 'export': self.export,
                'state': 'kept'}

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)


def finish(location: str, run_id: str, job_name: str, project: Optional[str],
           namespace: Optional[str], run_status: str) -> Manifest:
    """Write the manifest and the export metadata of a run's backup (at the
    run's end, whatever the end: a failed run's writes need undoing most)."""
    chunks = read_chunks(location)
    kinds: dict[str, dict[str, int]] = {}
    files: dict[str, dict[str, Any]] = {}
    sets: dict[str, writer.WrittenSet] = {}
    for chunk in chunks:
        files.update(chunk.files)
        for entry in chunk.entries:
            counts = kinds.setdefault(entry.ident[1][-2], {
                'put': 0, 'delete': 0, 'images': 0, 'absent': 0})
            counts[entry.op] += 1
            counts['absent' if entry.was_absent else 'images'] += 1
        for relative, described in chunk.files.items():
            folder, name = relative.rsplit('/', 1)
            written = sets.setdefault(folder, writer.WrittenSet(
                kind=folder.split('/kind_', 1)[1], namespace=_namespace_of(folder)))
            written.files.append(name)
            written.num_entities += described['records']
            written.num_bytes += described['bytes']
    export = None
    if sets:
        start = datetime.datetime.now(datetime.timezone.utc)
        export = writer.write_metadata(location, sets.values(), start)
    manifest = Manifest(
        location=location, run_id=run_id, job_name=job_name, project=project,
        namespace=namespace, run_status=run_status, kinds=kinds, files=files,
        chunks=[FileSystems.split(chunk.keys_file)[1] for chunk in chunks],
        writes=sum(len(chunk.entries) for chunk in chunks),
        at_msec=int(time.time() * 1000), export=export)
    with _create(FileSystems.join(location, MANIFEST), 'application/json') as stream:
        stream.write(manifest.to_json().encode())
    return manifest


def _namespace_of(folder: str) -> str:
    space = folder.split('/', 1)[0]
    return space[len('namespace_'):] if space.startswith('namespace_') else ''


def read_manifest(location: str) -> Manifest:
    path = FileSystems.join(location, MANIFEST)
    try:
        data = json.loads(_read_text(path))
        return Manifest(**data)
    except (OSError, ValueError, TypeError) as error:
        raise BackupError(
            f'The backup manifest {path} is missing or damaged ({error}).') from error


def verify(manifest: Manifest) -> list[Chunk]:
    """Every file the manifest names, present and intact; the chunks.
    Raises BackupError naming the first file that is not."""
    chunks = read_chunks(manifest.location)
    names = {FileSystems.split(chunk.keys_file)[1] for chunk in chunks}
    for name in manifest.chunks:
        if name not in names:
            raise BackupError(
                f'The backup keys file {FileSystems.join(manifest.location, KEYS, name)} '
                'is missing.')
    for relative, described in manifest.files.items():
        path = FileSystems.join(manifest.location, relative)
        try:
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                data = f.read()
        except OSError as error:
            raise BackupError(f'The backup file {path} is missing ({error}).') from error
        if len(data) != described['bytes'] or \
                hashlib.sha256(data).hexdigest() != described['sha256']:
            raise BackupError(
                f'The backup file {path} is damaged: it is not what the run '
                f'wrote ({len(data)} bytes, {described["bytes"]} written).')
    return [chunk for chunk in chunks if FileSystems.split(chunk.keys_file)[1]
            in set(manifest.chunks)]


def decode_image(record: bytes, project: str) -> datastore.Entity:
    """A stored before-image as a client entity of `project`."""
    from beam_jobs.export import decode   # pylint: disable=import-outside-toplevel
    image = decode.EntityDecoder(project).decode(record)
    if image is None:
        raise BackupError('A before-image record holds no entity: the backup is damaged.')
    decoded: datastore.Entity = image.to_client_entity()
    return decoded


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode('ascii')


def entries_of(chunks: Iterable[Chunk]) -> Iterator[Entry]:
    for chunk in chunks:
        yield from chunk.entries
