"""A job's puts and deletes, and a run's stored output, written to the Datastore.

In production: Beam's `WriteToDatastore` and `DeleteFromDatastore` (batched,
retried, throttled while the service ramps up). On the emulator, puts go in
batches bounded by bytes (`PutInBatchesFn`): its gRPC server takes messages of
at most 4 MiB, and Beam's sink batches up to 9 MB (the real service takes 10
MiB), so a migration of large entities failed there. Each batch is one commit
of the Datastore client, through Beam's public DoFn API: nothing of Beam's
sink's internals is replaced.

A named database (Firestore in Datastore mode) is written the same way in
production too: Beam's Python sinks have no database id (apache/beam#31988),
so there the commits are the client's, in batches of the real service's size.
"""

from __future__ import annotations

import time
from typing import Any, Unpack

import apache_beam as beam
from apache_beam.io.gcp.datastore.v1new import datastoreio
from google.api_core import exceptions as api_exceptions
from google.cloud import datastore
from google.cloud.datastore import helpers
from google.cloud.datastore_v1.types import entity as entity_types

from beam_jobs import target as target_lib

# A commit to the emulator stays under this many bytes of entities (one
# entity is under 1 MiB, so no commit reaches 4 MiB), and under the
# Datastore's 500 mutations: an entity counts at least this much.
EMULATOR_MAX_BATCH_BYTES = 2_500_000
MIN_ENTITY_WEIGHT = EMULATOR_MAX_BATCH_BYTES // 500
# The real service takes commits of up to 10 MiB: Beam's sink stays under 9 MB.
SERVICE_MAX_BATCH_BYTES = 9_000_000
_RETRIED = (api_exceptions.Aborted, api_exceptions.ServiceUnavailable,
            api_exceptions.DeadlineExceeded, api_exceptions.InternalServerError)
ATTEMPTS = 5

# A job's write, `(op, kind, entity or key, ...)`: before_images.Write (the
# two modules do not import each other).
Write = tuple[str, str, Any, Unpack[tuple[Any, ...]]]
# A transform that writes what it is given; what it returns is of no use.
Sink = beam.PTransform[beam.PCollection[Any], Any]


def _encoded_size(client_entity: datastore.Entity) -> int:
    size: int = entity_types.Entity.pb(helpers.entity_to_protobuf(client_entity)).ByteSize()
    return size


class PutInBatchesFn(beam.DoFn):
    """Client entities (or Beam entities) → commits of the Datastore client,
    each under EMULATOR_MAX_BATCH_BYTES and 500 entities, retried a few
    times on errors worth retrying. Puts are idempotent (complete keys), so a
    bundle the runner retries writes the same again. `delete(key)` deletes
    in the same commits."""

    def __init__(self, target: target_lib.Target,
                 max_bytes: int = EMULATOR_MAX_BATCH_BYTES):
        # Beam's DoFn.__init__ is untyped, and untyped_calls_exclude misses super().
        super().__init__()  # type: ignore[no-untyped-call]
        self._target = target
        self._max_bytes = max_bytes

    def setup(self) -> None:
        self._client = target_lib.client(self._target)

    def display_data(self) -> dict[str, Any]:
        return {'project': self._target.project,
                'database': target_lib.database_name(self._target.database)}

    def start_bundle(self) -> None:
        self._batch: list[datastore.Entity] = []
        self._deletes: list[datastore.Key] = []
        self._bytes = 0

    # Types in a comment: Beam would take annotations here as its type hints.
    def process(self, entity):  # type: (Any) -> None
        if not isinstance(entity, datastore.Entity):
            entity = entity.to_client_entity()     # a Beam entity
        if entity.key.database != self._target.database:
            entity.key = self._in_database(entity.key)
        self._add(entity, max(MIN_ENTITY_WEIGHT, _encoded_size(entity)))

    def delete(self, key: Any) -> None:
        if not isinstance(key, datastore.Key):
            key = key.to_client_key()               # a Beam key
        if key.database != self._target.database:
            key = self._in_database(key)
        self._add(key, MIN_ENTITY_WEIGHT)

    def _in_database(self, key: datastore.Key) -> datastore.Key:
        # Beam's entities and ndb's keys know no database: the run's is the
        # one every write goes to (the client refuses a key of another).
        return datastore.Key(*key.flat_path, project=key.project,
                             namespace=key.namespace, database=self._target.database)

    def _add(self, item: Any, size: int) -> None:     # a client entity or key
        if (self._batch or self._deletes) and self._bytes + size > self._max_bytes:
            self._commit()
        (self._deletes if isinstance(item, datastore.Key) else self._batch).append(item)
        self._bytes += size

    def finish_bundle(self) -> None:
        if self._batch or self._deletes:
            self._commit()

    def _commit(self) -> None:
        puts, deletes = self._batch, self._deletes
        self._batch, self._deletes, self._bytes = [], [], 0
        for attempt in range(ATTEMPTS):
            try:
                with self._client.batch() as batch:
                    for entity in puts:
                        batch.put(entity)
                    for key in deletes:
                        batch.delete(key)
                return
            except _RETRIED:
                if attempt == ATTEMPTS - 1:
                    raise
                time.sleep(0.2 * 2 ** attempt)


def _by_client(target: target_lib.Target) -> bool:
    """Whether the client's commits write (the emulator; a named database),
    rather than Beam's sinks."""
    return target_lib.is_emulator() or bool(target.database)


def _batch_bytes() -> int:
    return EMULATOR_MAX_BATCH_BYTES if target_lib.is_emulator() else SERVICE_MAX_BATCH_BYTES


def write_entities(project: str) -> Sink:
    """Beam entities (keys complete, any namespace) → the Datastore of
    `project`, sized for where it writes (see the module docstring)."""
    if target_lib.is_emulator():
        # Declared, not inferred: Beam's inference of a DoFn's output type
        # reads its bytecode, and cost more than a small run's reading.
        batched: Sink = beam.ParDo(
            PutInBatchesFn(target_lib.Target(project))).with_output_types(None)
        return batched
    return datastoreio.WriteToDatastore(project)


def delete_keys(project: str) -> Sink:
    """Beam's DeleteFromDatastore; keys are small, so Beam's batches fit."""
    return datastoreio.DeleteFromDatastore(
        project, throttle_rampup=not target_lib.is_emulator())


class _ApplyToEmulatorFn(PutInBatchesFn):
    """`(op, kind, entity or key, ...)` → puts and deletes, in bounded commits."""

    # Types in a comment: Beam would take annotations here as its type hints.
    def process(self, write):  # type: (Write) -> None
        op, item = write[0], write[2]
        if op == 'put':
            super().process(item)
        else:
            self.delete(item)


class ApplyWrites(beam.PTransform[beam.PCollection[Write], Any]):
    """A job's writes (`(op, kind, entity or key)`) → the Datastore of
    `target` (its project and database; each write goes to its own key's
    namespace): Beam's sinks in production, bounded commits of the client
    on the emulator and for a named database."""

    def __init__(self, target: target_lib.Target):
        super().__init__()
        self._target = target
        self._project = target.project

    # Types in a comment: Beam would take annotations here as its type hints.
    def expand(self, writes):  # type: (beam.PCollection[Write]) -> Any
        if _by_client(self._target):
            return writes | 'Apply' >> beam.ParDo(_ApplyToEmulatorFn(
                self._target, _batch_bytes())).with_output_types(None)
        puts = writes | 'Puts' >> beam.FlatMap(
            lambda write: [write[2]] if write[0] == 'put' else [])
        deletes = writes | 'Deletes' >> beam.FlatMap(
            lambda write: [write[2]] if write[0] == 'delete' else [])
        _ = puts | 'Put entities' >> write_entities(self._project)
        _ = deletes | 'Delete entities' >> delete_keys(self._project)
        return writes.pipeline
