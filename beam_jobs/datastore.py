"""Kinds in, ndb models out; writes out.

Everything that touches the Datastore's data model lives here: which project
and namespace a run uses, the ndb context job code runs inside (its workings
in ndb_context.py), reading a kind as ndb model instances (the read in
datastore_read.py, the models in lean_models.py), and turning models and keys
back into Beam's entities for the write transforms.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Type

import apache_beam as beam
from apache_beam.io.gcp.datastore.v1new import datastoreio
from apache_beam.io.gcp.datastore.v1new import types as beam_types
from google.cloud import datastore
from google.cloud import ndb

from beam_jobs import datastore_read
from beam_jobs import lean_models
from beam_jobs.ndb_context import NdbContext  # noqa: F401  (the public name)

NAMESPACE_ENV = 'DATASTORE_NAMESPACE'
METRICS_NAMESPACE = 'beam_jobs'


@dataclasses.dataclass(frozen=True)
class Target:
    """Which Datastore a run reads, writes and keeps its records in."""

    project: str
    namespace: Optional[str] = None

    @classmethod
    def from_environment(cls, project: Optional[str] = None,
                         namespace: Optional[str] = None) -> 'Target':
        """Flags win; then the emulator's variables; then Google's defaults."""
        project = (project or os.environ.get('DATASTORE_PROJECT_ID')
                   or os.environ.get('GOOGLE_CLOUD_PROJECT'))
        if not project:
            raise ValueError(
                'No Datastore project is set: pass --project, or set '
                'DATASTORE_PROJECT_ID (or DATASTORE_EMULATOR_HOST to use the '
                'local emulator).')
        return cls(project, namespace or os.environ.get(NAMESPACE_ENV) or None)


def is_emulator() -> bool:
    return bool(os.environ.get('DATASTORE_EMULATOR_HOST'))


def client(target: Target) -> datastore.Client:
    """A plain Datastore client for the target (used for run records)."""
    # This client finds the emulator (and refuses explicit credentials for
    # it) by itself, and the default credentials otherwise.
    return datastore.Client(project=target.project, namespace=target.namespace)


def kind_of(model_class: Type[ndb.Model]) -> str:
    return model_class._get_kind()


def key_path(key) -> str:
    """A key as `Kind/id[/Kind/id...]`, the way error lines name an entity."""
    if isinstance(key, ndb.Key):
        pairs = key.pairs()
    elif isinstance(key, datastore.Key):
        pairs = zip(key.flat_path[::2], key.flat_path[1::2])
    elif isinstance(key, lean_models.KEY_PB):
        flat = lean_models.flat_path_of(key)
        pairs = zip(flat[::2], flat[1::2])
    else:
        pairs = zip(key.path_elements[::2], key.path_elements[1::2])
    return '/'.join(f'{kind}/{ident}' for kind, ident in pairs)


# What a Datastore read yields per entity (datastore_read.py): its protobuf.
EntityPb = lean_models.EntityPb
_builders: dict = {}


def model_builder(model_class: Type[ndb.Model]) -> lean_models.ModelBuilder:
    """The (shared) builder of `model_class` instances from protobufs."""
    builder = _builders.get(model_class)
    if builder is None:
        builder = _builders[model_class] = lean_models.ModelBuilder(model_class)
    return builder


def to_model(entity, model_class: Type[ndb.Model]) -> ndb.Model:
    """An entity read by a Datastore read (a protobuf) or an export read (a
    Beam entity) as an instance of its ndb model, exactly as `Model.get()`
    returns it (needs an ndb context)."""
    if isinstance(entity, (EntityPb, lean_models.ENTITY_PB)):
        return model_builder(model_class).build(entity)
    return model_builder(model_class).build_entity(entity)


def to_beam_entity(model: ndb.Model) -> beam_types.Entity:
    """An ndb model as a Beam entity for WriteToDatastore (needs a context)."""
    if model.key is None or model.key.id() is None:
        raise ValueError(
            f'A {type(model).__name__} to put has no complete key: give it an '
            'id (for example `Model(id=...)`) so reruns overwrite, not '
            'duplicate.')
    # What `Model.put()` does before it serialises: hooks and auto_now fields.
    model._pre_put_hook()  # pylint: disable=protected-access
    model._prepare_for_put()  # pylint: disable=protected-access
    ds_entity = ndb.model._entity_to_ds_entity(model)  # pylint: disable=protected-access
    return beam_types.Entity.from_client_entity(ds_entity)


def to_beam_key(key: ndb.Key) -> beam_types.Key:
    """An ndb key as a Beam key for DeleteFromDatastore."""
    if not isinstance(key, ndb.Key):
        raise TypeError(f'Delete takes an ndb.Key or a model, not {key!r}.')
    # An ndb key wraps a google-cloud-datastore key; Beam converts from that.
    return beam_types.Key.from_client_key(key._key)  # pylint: disable=protected-access


def estimated_count(target: Target, kind: str) -> Optional[int]:
    """How many entities a kind holds, from the Datastore's kind statistics
    (`__Stat_Kind__` / `__Stat_Ns_Kind__`, refreshed about daily), or None
    where there are none: the emulator keeps no statistics."""
    stat_kind = '__Stat_Ns_Kind__' if target.namespace else '__Stat_Kind__'
    try:
        query = client(target).query(kind=stat_kind)
        query.add_filter(filter=datastore.query.PropertyFilter('kind_name', '=', kind))
        stats = list(query.fetch(limit=1, retry=None, timeout=5))
    except Exception:  # pylint: disable=broad-except
        return None
    return int(stats[0]['count']) if stats and 'count' in stats[0] else None


def kind_of_entity(entity) -> str:
    """The kind of a Beam entity or an entity protobuf."""
    if isinstance(entity, (EntityPb, lean_models.ENTITY_PB)):
        return entity.key.path[-1].kind
    return entity.key.path_elements[-2]


# The emulator's gRPC server takes messages of at most 4 MiB, and Beam's
# Datastore sink batches up to 9 MB (the real service takes 10 MiB), so a
# migration of large entities failed against the emulator (and Beam's error
# path then hid why). On the emulator a batch is committed once it passes
# this size; one entity is under 1 MiB, so no commit reaches 4 MiB.
EMULATOR_MAX_BATCH_BYTES = 2_500_000


class _BoundedWriteFn(datastoreio.WriteToDatastore._DatastoreWriteFn):  # pylint: disable=protected-access
    """Beam's write DoFn, committing early once a batch passes `max_bytes`."""

    def __init__(self, project: str, max_bytes: int):
        super().__init__(project)
        self._max_bytes = max_bytes

    def process(self, element):
        super().process(element)
        if self._batch_elements and self._batch_bytes_size > self._max_bytes:
            self._flush_batch()


def write_entities(project: str) -> beam.PTransform:
    """Beam's WriteToDatastore (batched, retried), sized for where it writes.

    On the emulator: no ramp-up throttling (it needs no protection from a
    burst, and throttling would only slow a local migration) and batches
    bounded by EMULATOR_MAX_BATCH_BYTES.
    """
    if not is_emulator():
        return datastoreio.WriteToDatastore(project)
    sink = datastoreio.WriteToDatastore(project, throttle_rampup=False)
    sink._mutate_fn = _BoundedWriteFn(project, EMULATOR_MAX_BATCH_BYTES)  # pylint: disable=protected-access
    return sink


def delete_keys(project: str) -> beam.PTransform:
    """Beam's DeleteFromDatastore; keys are small, so Beam's batches fit."""
    return datastoreio.DeleteFromDatastore(project,
                                           throttle_rampup=not is_emulator())


# Beam's splitter samples 32 `__scatter__` keys per key range. The emulator
# returns them 300 a page at ~0.3 s of CPU a page, all before any entity is
# read: 64 shards took 2.0 s to split, one page 0.25 s (bench/README.md).
# Locally the ranges are read by one worker anyway (datastore_read.py), so
# there the sample is one page.
EMULATOR_SCATTER_KEYS = 300


class ReadKind(beam.PTransform):
    """Every entity of one model's kind, read in `num_splits` key ranges.

    Entities stay entity protobufs here (datastore_read.py): the map step
    turns each into its model inside an ndb context (`to_model`), so an
    entity that fails to decode is reported by key instead of failing the
    read.
    """

    def __init__(self, model_class: Type[ndb.Model], target: Target,
                 num_splits: int):
        super().__init__()
        self._kind = kind_of(model_class)
        self._target = target
        self._num_splits = num_splits

    def expand(self, pbegin):
        query = beam_types.Query(kind=self._kind, project=self._target.project,
                                 namespace=self._target.namespace)
        return pbegin | 'ReadFromDatastore' >> datastore_read.ReadKeyRanges(
            query, self._num_splits,
            max_scatter_keys=EMULATOR_SCATTER_KEYS if is_emulator() else None)
