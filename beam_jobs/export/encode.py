"""Entities → EntityProto records, as a managed export stores them.

The writer's half of decode.py, and its mirror: what `encode` writes,
`EntityDecoder` reads back to the same entity, and the emulator's `:import`
accepts. The choices follow what the emulator's own `:export` writes
(FIELD-NOTES.md): indexed values in `property`, unindexed ones in
`raw_property`; bytes as BLOB (unindexed) or BYTESTRING (indexed), compressed
bytes with meaning_uri "ZLIB"; an embedded entity as a serialized
EntityProto (a keyless one with app "" and an empty path); an empty list as
one EMPTY_LIST property; `entity_group` set to the root of the key.

Input may be a Beam entity, a Google Cloud client entity or an ndb model
(which needs an ndb context, as any ndb serialisation does).
"""

from __future__ import annotations

import datetime
from typing import Any, Optional

from apache_beam.io.gcp.datastore.v1new import types as beam_types
from google.cloud import datastore
from google.cloud import ndb
from google.cloud.datastore.helpers import GeoPoint

from beam_jobs.compat import datastore_client
from beam_jobs.compat import ndb as ndb_compat
from beam_jobs.export import protos
from beam_jobs.export.protos import (BLOB, BYTESTRING, EMPTY_LIST,
                                     ENTITY_PROTO, GD_WHEN, GEORSS_POINT,
                                     MEANING_URI_ZLIB, V1_USER, V1_ZLIB)

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_MICROSECOND = datetime.timedelta(microseconds=1)


def client_entity(entity: Any) -> datastore.Entity:
    """A Beam entity, client entity or ndb model as a client entity."""
    if isinstance(entity, datastore.Entity):
        return entity
    if isinstance(entity, beam_types.Entity):
        return entity.to_client_entity()
    if isinstance(entity, ndb.Model):
        # What `put()` does: its hooks and auto_now fields, then the
        # serialisation it uses, meanings (compression) included.
        return ndb_compat.to_client_entity(entity)
    raise TypeError(
        f'Only Beam entities, Datastore client entities and ndb models can be '
        f'written to an export, not {type(entity).__name__}.')


def encode(entity: Any, project: Optional[str] = None) -> bytes:
    """One record: the EntityProto of `entity`, its key in `project`.

    `project=None` keeps the entity's own project.
    """
    entity = client_entity(entity)
    if entity.key is None or entity.key.is_partial:
        raise ValueError(
            f'An entity to export has no complete key ({entity.key!r}): give '
            'it an id or a name.')
    return _entity_proto(entity, project).SerializeToString()


def _entity_proto(entity: datastore.Entity,
                  project: Optional[str]) -> protos.EntityProto:
    pb = protos.EntityProto()
    key = entity.key
    if key is None:
        pb.key.app = ''
        pb.key.path.SetInParent()
        pb.entity_group.SetInParent()
    else:
        pb.key.app = project or key.project
        if key.namespace:
            pb.key.name_space = key.namespace
        _fill_path(pb.key.path.element, key.flat_path)
        _fill_path(pb.entity_group.element, key.flat_path[:2])
    excluded = entity.exclude_from_indexes
    meanings = datastore_client.meanings(entity)
    for name, value in entity.items():
        unindexed = name in excluded
        meaning = meanings.get(name, (None,))[0]
        if isinstance(value, list):
            if not value:
                prop = pb.property.add(name=name, multiple=False,
                                       meaning=EMPTY_LIST)
                prop.value.SetInParent()
                continue
            for index, element in enumerate(value):
                _add(pb, name, element, unindexed, True,
                     _element_meaning(meaning, index), project)
        else:
            _add(pb, name, value, unindexed, False, meaning, project)
    return pb


def _element_meaning(meaning, index: int) -> Optional[int]:
    """One element's meaning, from any shape the client library keeps."""
    if isinstance(meaning, tuple):
        root, subs = meaning
        if subs and index < len(subs) and subs[index] is not None:
            return subs[index]
        return root
    if isinstance(meaning, list):
        return meaning[index] if index < len(meaning) else None
    return meaning


def _fill_path(elements, flat_path) -> None:
    for index in range(0, len(flat_path), 2):
        kind, ident = flat_path[index], flat_path[index + 1:index + 2]
        if not ident:   # an incomplete key, as an embedded entity may have
            elements.add(type=kind)
        elif isinstance(ident[0], str):
            elements.add(type=kind, name=ident[0])
        else:
            elements.add(type=kind, id=ident[0])


def _add(pb, name: str, value, unindexed: bool, multiple: bool,
         v1_meaning: Optional[int], project: Optional[str]) -> None:
    prop = (pb.raw_property if unindexed else pb.property).add(
        name=name, multiple=multiple)
    pv = prop.value
    if value is None:
        pv.SetInParent()
    elif isinstance(value, bool):
        pv.booleanValue = value
    elif isinstance(value, int):
        pv.int64Value = value
    elif isinstance(value, float):
        pv.doubleValue = value
    elif isinstance(value, str):
        pv.stringValue = value.encode('utf-8')
    elif isinstance(value, bytes):
        pv.stringValue = value
        if v1_meaning == V1_ZLIB:
            prop.meaning, prop.meaning_uri = BLOB, MEANING_URI_ZLIB
        else:
            prop.meaning = BLOB if unindexed else BYTESTRING
    elif isinstance(value, datetime.datetime):
        if value.tzinfo is None:  # naive datetimes are UTC in the Datastore
            value = value.replace(tzinfo=datetime.timezone.utc)
        pv.int64Value = (value - _EPOCH) // _MICROSECOND
        prop.meaning = GD_WHEN
    elif isinstance(value, GeoPoint):
        pv.pointvalue.x, pv.pointvalue.y = value.latitude, value.longitude
        prop.meaning = GEORSS_POINT
    elif isinstance(value, (datastore.Key, beam_types.Key)):
        _fill_reference(pv.referencevalue, value, project)
    elif isinstance(value, (datastore.Entity, beam_types.Entity, dict)):
        if v1_meaning == V1_USER:
            _fill_user(pv.uservalue, value)
        else:
            pv.stringValue = _entity_proto(
                _embedded(value), project).SerializeToString()
            prop.meaning = ENTITY_PROTO
    else:
        raise TypeError(
            f'Property {name!r} holds a {type(value).__name__}, which a '
            'Datastore entity cannot store.')


def _fill_reference(ref, key, project: Optional[str]) -> None:
    if isinstance(key, beam_types.Key):
        key = key.to_client_key()
    ref.app = project or key.project
    if key.namespace:
        ref.name_space = key.namespace
    _fill_path(ref.pathelement, key.flat_path)


def _embedded(value) -> datastore.Entity:
    if isinstance(value, dict) and not isinstance(value, datastore.Entity):
        entity = datastore.Entity()
        entity.update(value)
        return entity
    return client_entity(value)


def _fill_user(user, value) -> None:
    user.email = value['email']
    user.auth_domain = value.get('auth_domain', '')
    user.gaiaid = 0
    if value.get('user_id'):
        user.obfuscated_gaiaid = value['user_id']
    for name in ('federated_identity', 'federated_provider'):
        if value.get(name):
            setattr(user, name, value[name])
