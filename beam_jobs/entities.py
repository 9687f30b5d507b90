"""One entity in its three shapes: the protobuf a read gives, Beam's entity,
the job's ndb model.

The Datastore read yields entity protobufs (in an `EntityPb`), an export read
yields Beam entities; the map step turns either into the job's model
(`to_model`, through lean_models.py), and a job's `Put` and `Delete` become
Beam entities and keys again for the write transforms. Error lines name an
entity the same way whatever its shape (`key_path`).
"""

from __future__ import annotations

from typing import Type

from apache_beam.io.gcp.datastore.v1new import types as beam_types
from google.cloud import datastore
from google.cloud import ndb

from beam_jobs import lean_models
from beam_jobs.compat import ndb as ndb_compat

# What a Datastore read yields per entity (io/datastore_read.py).
EntityPb = lean_models.EntityPb


def kind_of(model_class: Type[ndb.Model]) -> str:
    """The kind a model class is stored as (its `_get_kind()`)."""
    return ndb_compat.kind_of(model_class)


def kind_of_entity(entity) -> str:
    """The kind of a Beam entity or an entity protobuf."""
    if isinstance(entity, (EntityPb, lean_models.ENTITY_PB)):
        return entity.key.path[-1].kind
    return entity.key.path_elements[-2]


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


_builders: dict = {}


def model_builder(model_class: Type[ndb.Model]) -> lean_models.ModelBuilder:
    """The (shared) builder of `model_class` instances."""
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


def to_client_entity(model: ndb.Model) -> datastore.Entity:
    """An ndb model as the client entity `Model.put()` would send (its put
    hooks and auto_now fields run first; needs a context)."""
    if model.key is None or model.key.id() is None:
        raise ValueError(
            f'A {type(model).__name__} to put has no complete key: give it an '
            'id (for example `Model(id=...)`) so reruns overwrite, not '
            'duplicate.')
    return ndb_compat.to_client_entity(model)


def to_beam_entity(model: ndb.Model) -> beam_types.Entity:
    """An ndb model as a Beam entity for the write transforms."""
    return beam_types.Entity.from_client_entity(to_client_entity(model))


def to_beam_key(key: ndb.Key) -> beam_types.Key:
    """An ndb key as a Beam key for the delete transforms."""
    if not isinstance(key, ndb.Key):
        raise TypeError(f'Delete takes an ndb.Key or a model, not {key!r}.')
    return beam_types.Key.from_client_key(ndb_compat.client_key_of(key))


def namespace_of(element) -> str:
    """The namespace of what a map step gets ('' the default one): an entity
    protobuf (a Datastore read), a Beam entity (an export) or a model."""
    if isinstance(element, (EntityPb, lean_models.ENTITY_PB)):
        return element.key.partition_id.namespace_id
    if isinstance(element, beam_types.Entity):
        return element.key.namespace or ''
    return element.key.namespace() or ''
