"""A job's puts and deletes, and a run's stored output, written to the Datastore.

In production: Beam's `WriteToDatastore` and `DeleteFromDatastore` (batched,
retried, throttled while the service ramps up). On the emulator, puts go in
batches bounded by bytes: its gRPC server takes messages of at most 4 MiB,
and Beam's sink batches up to 9 MB (the real service takes 10 MiB), so a
migration of large entities failed there. The batches come from Beam's own
`BatchElements`, sized by each entity's encoded bytes, and each batch is one
commit of the Datastore client.
"""

from __future__ import annotations

import time

import apache_beam as beam
from apache_beam.io.gcp.datastore.v1new import datastoreio
from google.api_core import exceptions as api_exceptions
from google.cloud.datastore import helpers
from google.cloud.datastore_v1.types import entity as entity_types

from beam_jobs import target as target_lib

# A commit to the emulator stays under this many bytes of entities (one
# entity is under 1 MiB, so no commit reaches 4 MiB), and under the
# Datastore's 500 mutations: an entity counts at least this much.
EMULATOR_MAX_BATCH_BYTES = 2_500_000
MIN_ENTITY_WEIGHT = EMULATOR_MAX_BATCH_BYTES // 500
_RETRIED = (api_exceptions.Aborted, api_exceptions.ServiceUnavailable,
            api_exceptions.DeadlineExceeded, api_exceptions.InternalServerError)
ATTEMPTS = 5


def _weight(client_entity) -> int:
    pb = helpers.entity_to_protobuf(client_entity)
    return max(MIN_ENTITY_WEIGHT, entity_types.Entity.pb(pb).ByteSize())


class _CommitBatchFn(beam.DoFn):
    """One batch of client entities → one commit, retried a few times."""

    def __init__(self, target: target_lib.Target):
        super().__init__()
        self._target = target

    def setup(self):
        self._client = target_lib.client(self._target)

    def process(self, batch):
        for attempt in range(ATTEMPTS):
            try:
                self._client.put_multi(batch)
                return
            except _RETRIED:
                if attempt == ATTEMPTS - 1:
                    raise
                time.sleep(0.2 * 2 ** attempt)


class _WriteToEmulator(beam.PTransform):
    """Beam entities → the emulator, in commits of at most
    EMULATOR_MAX_BATCH_BYTES."""

    def __init__(self, project: str):
        super().__init__()
        self._target = target_lib.Target(project)

    def expand(self, entities):
        return (
            entities
            | 'To client entities' >> beam.Map(lambda entity: entity.to_client_entity())
            # Equal bounds: a fixed batch size (in bytes), not one Beam tunes.
            | 'Batch by bytes' >> beam.BatchElements(
                min_batch_size=EMULATOR_MAX_BATCH_BYTES,
                max_batch_size=EMULATOR_MAX_BATCH_BYTES,
                element_size_fn=_weight, record_metrics=False)
            | 'Commit' >> beam.ParDo(_CommitBatchFn(self._target))
        )


def write_entities(project: str) -> beam.PTransform:
    """Beam entities (keys complete, any namespace) → the Datastore of
    `project`, sized for where it writes (see the module docstring)."""
    if target_lib.is_emulator():
        return _WriteToEmulator(project)
    return datastoreio.WriteToDatastore(project)


def delete_keys(project: str) -> beam.PTransform:
    """Beam's DeleteFromDatastore; keys are small, so Beam's batches fit."""
    return datastoreio.DeleteFromDatastore(
        project, throttle_rampup=not target_lib.is_emulator())


class ApplyWrites(beam.PTransform):
    """A job's writes (`(op, kind, entity or key)`) → the Datastore's sinks."""

    def __init__(self, project: str):
        super().__init__()
        self._project = project

    def expand(self, writes):
        puts = writes | 'Puts' >> beam.FlatMap(
            lambda write: [write[2]] if write[0] == 'put' else [])
        deletes = writes | 'Deletes' >> beam.FlatMap(
            lambda write: [write[2]] if write[0] == 'delete' else [])
        _ = puts | 'Put entities' >> write_entities(self._project)
        _ = deletes | 'Delete entities' >> delete_keys(self._project)
        return writes.pipeline
