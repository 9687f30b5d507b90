"""EntityProto records → the entities Beam's Datastore read yields.

`EntityDecoder` turns an export record into the same
`apache_beam.io.gcp.datastore.v1new.types.Entity` that `ReadFromDatastore`
gives for that entity, so everything after the read (`datastore.to_model`,
the map step) cannot tell the two sources apart. Values take the shapes the
Datastore read gives them: a top-level key is a Beam `Key`, keys and embedded
entities inside lists stay Google Cloud client objects, datetimes are UTC.
Two deliberate differences, both so that `to_model` decodes as `Model.get()`:

- a keyless embedded entity (a `LocalStructuredProperty`) is a client
  `Entity`, where Beam's read turns it into a plain dict that ndb cannot
  decode;
- the entity is an `ExportEntity`, which keeps the v1 meanings ndb consults
  (a zlib-compressed blob, a user value) across `to_client_entity()`.

Decoding is the hot path of a large read: the record is parsed by protobuf's
C parser (see protos.py) and walked once; the common cases come first.
"""

from __future__ import annotations

import datetime
from typing import Any, Collection, Optional, Union

from apache_beam.io.gcp.datastore.v1new import types as beam_types
from google.cloud import datastore
from google.cloud.datastore.helpers import GeoPoint

from beam_jobs.compat import datastore_client
from beam_jobs.export import protos
from beam_jobs.export.protos import (BLOB, BYTESTRING, EMPTY_LIST,
                                     ENTITY_PROTO, GD_WHEN, MEANING_URI_ZLIB,
                                     V1_USER, V1_ZLIB)

_BYTES_MEANINGS = frozenset({BLOB, BYTESTRING})
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_timedelta = datetime.timedelta
_USER_FIELDS = (('email', 'email'), ('auth_domain', 'auth_domain'),
                ('user_id', 'obfuscated_gaiaid'),
                ('federated_identity', 'federated_identity'),
                ('federated_provider', 'federated_provider'))


def project_of_app(app: str) -> str:
    """A project id from an App Engine app id: `s~proj` and `e~proj` → `proj`."""
    return app.split('~', 1)[-1]


class ExportEntity(beam_types.Entity):
    """A Beam entity that also keeps the v1 meanings of its properties.

    Beam's entity drops meanings, and ndb reads one (a blob stored
    compressed, read by a property that is not); `to_client_entity` puts
    them back. Equal to a plain Beam entity with the same key and values.
    """

    def __init__(self, key: beam_types.Key, exclude_from_indexes=(),
                 meanings: Optional[dict] = None):
        super().__init__(key, exclude_from_indexes)
        self.meanings = meanings or {}

    def to_client_entity(self) -> datastore.Entity:
        client = super().to_client_entity()
        for name, meaning in self.meanings.items():
            datastore_client.meanings(client)[name] = (meaning, client[name])
        return client


# Which namespaces a read keeps: one ('' the default), several, or all (None).
NamespaceFilter = Union[None, str, Collection[str]]


class EntityDecoder:
    """Decodes records into entities of `project`, keeping only some.

    `kinds`: the kinds to keep (None: all). `namespace`: the one namespace
    to keep, '' for the default one, or a collection of them (a run over
    several namespaces); None keeps all. Key values inside
    properties are mapped to `project` too: an export read into a run
    belongs to the run's project, as after an import.
    """

    def __init__(self, project: Optional[str], kinds: Optional[Collection[str]] = None,
                 namespace: NamespaceFilter = None):
        self._project = project
        self._kinds = frozenset(kinds) if kinds is not None else None
        self._namespaces = (None if namespace is None else frozenset(
            [namespace] if isinstance(namespace, str) else namespace))

    def decode(self, record: bytes) -> Optional[beam_types.Entity]:
        """The record's entity, or None if its kind or namespace is not kept."""
        pb = protos.EntityProto.FromString(record)
        key = pb.key
        elements = key.path.element
        if self._kinds is not None and (
                not elements or elements[-1].type not in self._kinds):
            return None
        namespace = key.name_space
        if self._namespaces is not None and namespace not in self._namespaces:
            return None
        path = _flat_path(elements)
        values: dict[str, Any] = {}
        excluded: list[str] = []
        meanings: dict[str, Any] = {}
        self._properties(pb.property, False, values, excluded, meanings, True)
        self._properties(pb.raw_property, True, values, excluded, meanings,
                         True)
        entity = ExportEntity(beam_types.Key(
            path, project=self._project, namespace=namespace or None),
            excluded, meanings)
        entity.properties = values
        return entity

    def _properties(self, props, unindexed: bool, values: dict,
                    excluded: list, meanings: dict, top: bool) -> None:
        """Adds `props` to `values`; `top`: of the entity, not an embedded one."""
        list_meanings: Optional[dict[str, dict[int, Any]]] = None
        for prop in props:
            name = prop.name
            meaning = prop.meaning
            pv = prop.value
            which = pv.WhichOneof('value')
            v1_meaning = None
            if which == 'stringValue':
                value = pv.stringValue
                if meaning in _BYTES_MEANINGS:
                    if prop.meaning_uri == MEANING_URI_ZLIB:
                        v1_meaning = V1_ZLIB
                elif meaning == ENTITY_PROTO:
                    value = self._embedded(value, top and not prop.multiple)
                elif meaning == 0 and prop.meaning_uri == MEANING_URI_ZLIB:
                    v1_meaning = V1_ZLIB
                else:
                    try:
                        value = value.decode('utf-8')
                    except UnicodeDecodeError:
                        # Not text after all (App Engine never checked): keep
                        # the bytes rather than lose the value.
                        pass
            elif which == 'int64Value':
                value = pv.int64Value
                if meaning == GD_WHEN:
                    value = _EPOCH + _timedelta(0, 0, value)
            elif which is None:
                value = [] if meaning == EMPTY_LIST else None
            elif which == 'booleanValue':
                value = pv.booleanValue
            elif which == 'doubleValue':
                value = pv.doubleValue
            elif which == 'referencevalue':
                value = self._reference(pv.referencevalue,
                                        top and not prop.multiple)
            elif which == 'pointvalue':
                value = GeoPoint(pv.pointvalue.x, pv.pointvalue.y)
            else:  # uservalue
                value, v1_meaning = _user(pv.uservalue), V1_USER
            if prop.multiple:
                elements = values.setdefault(name, [])
                elements.append(value)
                if v1_meaning is not None:
                    list_meanings = list_meanings or {}
                    list_meanings.setdefault(name, {})[len(elements) - 1] = v1_meaning
            else:
                values[name] = value
                if v1_meaning is not None:
                    meanings[name] = v1_meaning
            if unindexed:
                excluded.append(name)
        for name, by_index in (list_meanings or {}).items():
            # The shape the Datastore client gives a list's meanings.
            meanings[name] = (None, [by_index.get(index) for index in
                                     range(len(values[name]))])

    def _reference(self, ref, beam: bool):
        path = _flat_path(ref.pathelement)
        namespace = ref.name_space or None
        if beam:
            return beam_types.Key(path, project=self._project,
                                  namespace=namespace)
        return datastore.Key(*path, project=self._project, namespace=namespace)

    def _embedded(self, data: bytes, beam: bool):
        pb = protos.EntityProto.FromString(data)
        key = None
        if pb.key.path.element:
            key = self._reference_from_key(pb.key)
        values: dict[str, Any] = {}
        excluded: list[str] = []
        meanings: dict[str, Any] = {}
        self._properties(pb.property, False, values, excluded, meanings,
                         False)
        self._properties(pb.raw_property, True, values, excluded, meanings,
                         False)
        entity = datastore.Entity(key=key, exclude_from_indexes=excluded)
        entity.update(values)
        for name, meaning in meanings.items():
            datastore_client.meanings(entity)[name] = (meaning, values[name])
        if beam and key is not None:
            # What Beam's read makes of a keyed embedded entity.
            return beam_types.Entity.from_client_entity(entity)
        return entity

    def _reference_from_key(self, key) -> datastore.Key:
        return datastore.Key(*_flat_path(key.path.element),
                             project=self._project,
                             namespace=key.name_space or None)


def _flat_path(elements) -> list:
    """`[kind, id_or_name, …]`; an incomplete key ends with its kind."""
    path = []
    for element in elements:
        path.append(element.type)
        ident = element.name or element.id
        if ident:
            path.append(ident)
    return path


def _user(user) -> datastore.Entity:
    """A user value as the v1 API gives it: an entity ndb turns into a User."""
    entity = datastore.Entity(exclude_from_indexes=(
        'email', 'auth_domain', 'user_id'))
    for name, field in _USER_FIELDS:
        if user.HasField(field):
            entity[name] = getattr(user, field)
    return entity
