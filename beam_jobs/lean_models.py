"""Datastore protobufs → ndb models, lean: what the map step hands to `map`.

ndb's own read turns an entity protobuf into a client `Entity`
(`helpers.entity_from_protobuf`), then into a model
(`ndb.model._entity_from_ds_entity`), and a Beam read adds a Beam entity on
the way. For the common property types the outcome is simple: the model's
`_values` holds each stored value wrapped in `_BaseValue` (a list of them for
a repeated property), and ndb converts it to the user's value when the job
first reads it. `ModelBuilder` writes exactly that straight from the
protobuf. Anything it does not handle the same way ndb does (embedded
entities: set structured, local-structured and user properties; legacy
dotted names; a stored meaning an uncompressed blob property would act on;
`Expando` and `PolyModel` classes; properties that override how ndb stores
them; values ndb itself would refuse) goes through ndb's own path for the
whole entity, so a model is always what `Model.get()` returns.

Keys: models get `FlatKey`s (compat/datastore_client.py), whose getters
read the path they hold instead of copying it: a job's `item.id` used to cost
more than decoding the entity.

The ndb and client internals this needs are fenced in `beam_jobs.compat`.
"""

from __future__ import annotations

import datetime
from typing import Optional, Type

from google.cloud import datastore
from google.cloud import ndb
from google.cloud.datastore import helpers
# The very classes `helpers.entity_from_protobuf` makes values of.
from google.cloud.datastore.helpers import DatetimeWithNanoseconds
from google.cloud.datastore.helpers import GeoPoint
from google.cloud.datastore_v1.types import entity as entity_types
from google.cloud.ndb import model as ndb_model
from google.protobuf.message import Message

from beam_jobs.compat import datastore_client
from beam_jobs.compat import ndb as ndb_compat
from beam_jobs.compat.datastore_client import FlatKey, make_flat

# The raw (upb) protobuf classes behind the client's proto-plus types.
ENTITY_PB = entity_types.Entity.pb()
KEY_PB = entity_types.Key.pb()


class EntityPb:
    """An entity protobuf as it travels from the read to the map step.

    The raw protobuf classes do not pickle (proto-plus builds them at import
    time), and a runner may encode the elements between two steps; this
    wrapper pickles as the protobuf's bytes.
    """

    __slots__ = ('pb',)

    def __init__(self, pb: Message) -> None:
        self.pb = pb

    @property
    def key(self):
        return self.pb.key

    def __reduce__(self):
        return _entity_pb_from_bytes, (self.pb.SerializeToString(),)

    def __eq__(self, other):
        return isinstance(other, EntityPb) and other.pb == self.pb

    def __repr__(self):
        return f'EntityPb({self.pb!r})'


def _entity_pb_from_bytes(data: bytes) -> EntityPb:
    return EntityPb(ENTITY_PB.FromString(data))


class _Fallback(Exception):
    """This entity needs ndb's own decoding."""


def flat_path_of(key_pb) -> list:
    """`[kind, id_or_name, ...]` of a key protobuf, as the client reads it."""
    flat = []
    for element in key_pb.path:
        flat.append(element.kind)
        if element.id:
            flat.append(element.id)
        if element.name:
            flat.append(element.name)
    return flat


def key_from_pb(key_pb, key_class: type = FlatKey) -> datastore.Key:
    """A key protobuf as a `FlatKey` (or `key_class`), equal to
    `helpers.key_from_protobuf`'s."""
    flat, path = [], []
    elements = key_pb.path
    last = len(elements) - 1
    for index, element in enumerate(elements):
        kind = element.kind
        ident, name = element.id, element.name
        flat.append(kind)
        if ident and not name:
            flat.append(ident)
            path.append({'kind': kind, 'id': ident})
        elif name and not ident:
            flat.append(name)
            path.append({'kind': kind, 'name': name})
        elif not ident and not name and index == last:
            path.append({'kind': kind})   # an incomplete key
        else:
            raise _Fallback('unusual key path')
    partition = key_pb.partition_id
    project = partition.project_id
    if not path or not project:
        raise _Fallback('key without a path or project')
    return datastore_client.new_key(tuple(flat), path, project,
                                    partition.namespace_id or None,
                                    partition.database_id or None, key_class)


_SIMPLE = frozenset({'string_value', 'integer_value', 'boolean_value',
                     'double_value', 'blob_value'})


def _value(value_pb, which: Optional[str] = None,
           key_class: type = datastore.Key):
    """A scalar value protobuf as `helpers._get_value_from_value_pb` reads it
    (a key as a `key_class`)."""
    if which is None:
        which = value_pb.WhichOneof('value_type')
    if which in _SIMPLE:
        return getattr(value_pb, which)
    if which == 'timestamp_value':
        return DatetimeWithNanoseconds.from_timestamp_pb(value_pb.timestamp_value)
    if which == 'null_value':
        return None
    if which == 'key_value':
        return key_from_pb(value_pb.key_value, key_class)
    if which == 'geo_point_value':
        point = value_pb.geo_point_value
        return GeoPoint(point.latitude, point.longitude)
    raise _Fallback(which)   # embedded entities, nested arrays, no value


# Values a Beam entity holds as they are what ndb's read would wrap.
_PLAIN_TYPES = (str, int, float, bool, bytes, datetime.datetime, GeoPoint)


def _client_key(flat_path, project, namespace,
                key_class: type = FlatKey) -> datastore.Key:
    """A complete key from its flat path, as `key_from_pb` builds one."""
    if not project or len(flat_path) % 2:
        raise _Fallback('an incomplete key or one without a project')
    path = []
    for index in range(0, len(flat_path), 2):
        kind, ident = flat_path[index], flat_path[index + 1]
        if type(ident) is int:  # pylint: disable=unidiomatic-typecheck
            path.append({'kind': kind, 'id': ident})
        elif type(ident) is str and ident:  # pylint: disable=unidiomatic-typecheck
            path.append({'kind': kind, 'name': ident})
        else:
            raise _Fallback('unusual key path')
    return datastore_client.new_key(tuple(flat_path), path, project,
                                    namespace or None, None, key_class)


def _plain(value, key_class: type):
    """A decoded value as ndb's read holds it (a key as a `key_class`)."""
    if type(value) in _PLAIN_TYPES:  # the common case
        return value
    if isinstance(value, _PLAIN_TYPES):
        return value
    path = getattr(value, 'path_elements', None)   # a Beam key
    if path is not None:
        return _client_key(list(path), value.project, value.namespace, key_class)
    if isinstance(value, datastore.Key):
        return _client_key(list(value.flat_path), value.project, value.namespace,
                           key_class)
    raise _Fallback(type(value).__name__)   # embedded entities and the rest


def _embedded(values: dict) -> datastore.Entity:
    embedded = datastore.Entity()
    embedded.update(values)
    return embedded


# Property classes whose stored values are embedded entities (or, computed,
# are recomputed): ndb's own path, unless the value is a null.
_SLOW_PROPERTIES = (ndb.StructuredProperty, ndb.LocalStructuredProperty,
                    ndb.UserProperty, ndb.ComputedProperty)
# What ndb's read does with a stored name that is no property: ignore it, but
# first look it up on the entity's own class when its kind is not the
# model's (a PolyModel), which this builder leaves to ndb.
_UNKNOWN = object()
_IGNORED = object()      # a class attribute that is not a property
_SLOW = object()


class ModelBuilder:
    """Builds instances of one model class from entity protobufs."""

    def __init__(self, model_class: Type[ndb.Model]):
        self._model_class = model_class
        self._class_name = model_class.__name__
        self._kinds_ignoring_unknown: dict = {}
        self._always_slow = issubclass(model_class, ndb.Expando)
        # Stored property name -> (name in _values, repeated, whether a
        # stored meaning matters, class of key values, only a null is ours)
        # or one of the markers above; decided the first time a name is met,
        # by the lookup ndb's read makes.
        self._handlers: dict = {}

    def build(self, entity_pb) -> ndb.Model:
        """The model ndb would read from `entity_pb` (an `EntityPb` or a
        protobuf; needs no RPC)."""
        if type(entity_pb) is EntityPb:  # pylint: disable=unidiomatic-typecheck
            entity_pb = entity_pb.pb
        if not self._always_slow:
            try:
                return self._build(entity_pb)
            except _Fallback:
                pass
        return self.slow(entity_pb)

    def build_entity(self, entity) -> ndb.Model:
        """The model ndb would read from a Beam entity (an export read's)."""
        if not self._always_slow:
            try:
                return self._build_values(entity)
            except _Fallback:
                pass
        return self.slow_entity(entity)

    def slow_entity(self, entity) -> ndb.Model:
        """ndb's own decoding of a Beam entity, with a `FlatKey`."""
        ds_entity = entity.to_client_entity()
        # Beam's read turns a keyless embedded entity (a LocalStructuredProperty)
        # into a dict, which ndb cannot decode: make it an entity again.
        for name, value in list(ds_entity.items()):
            if type(value) is dict:  # pylint: disable=unidiomatic-typecheck
                ds_entity[name] = _embedded(value)
            elif isinstance(value, list) and any(type(v) is dict for v in value):  # pylint: disable=unidiomatic-typecheck
                ds_entity[name] = [_embedded(v) if type(v) is dict else v  # pylint: disable=unidiomatic-typecheck
                                   for v in value]
        return _with_flat_key(ndb_compat.from_client_entity(ds_entity, self._model_class))

    def slow(self, entity_pb) -> ndb.Model:
        """ndb's own decoding, with a `FlatKey` in the model's key."""
        return _with_flat_key(ndb_compat.from_client_entity(
            helpers.entity_from_protobuf(entity_pb), self._model_class))

    def _build(self, entity_pb) -> ndb.Model:
        properties = entity_pb.properties
        if 'class' in properties:
            raise _Fallback('a PolyModel class property')
        entity = self._model_class()
        same_kind = True
        if entity_pb.HasField('key'):
            key = key_from_pb(entity_pb.key)
            same_kind = self._unknown_names_ignored(key.kind)
            ndb_compat.set_key(entity, key)
        handlers = self._handlers
        values = ndb_compat.values_of(entity)
        base_value = ndb_compat.BaseValue
        for name in properties:
            value_pb = properties[name]
            handler = handlers.get(name)
            if handler is None:
                handler = handlers[name] = self._handler(name)
            if handler is _IGNORED or (handler is _UNKNOWN and same_kind):
                continue
            if handler is _SLOW or handler is _UNKNOWN:
                raise _Fallback(name)
            stored_name, repeated, meaning_matters, key_class, null_only = handler
            if meaning_matters and value_pb.meaning:
                raise _Fallback('a meaning on an uncompressed blob')
            which = value_pb.WhichOneof('value_type')
            if null_only and which != 'null_value' and (
                    which != 'array_value' or value_pb.array_value.values):
                raise _Fallback('a value ndb decodes itself')
            if which in _SIMPLE:        # the common case, inlined
                value = base_value(getattr(value_pb, which))
                if repeated:
                    value = [value]
            elif which == 'array_value':
                if not repeated:
                    raise _Fallback('a list in a property that is not repeated')
                items = value_pb.array_value.values
                if items and len({item.exclude_from_indexes for item in items}) != 1:
                    raise _Fallback('a list indexed in part')
                value = []
                for item in items:
                    if meaning_matters and item.meaning:
                        raise _Fallback('a meaning on an uncompressed blob')
                    item_value = _value(item, None, key_class)
                    value.append(None if item_value is None else base_value(item_value))
            else:
                value = _value(value_pb, which, key_class)
                if value is not None:
                    value = base_value(value)
                    if repeated:
                        value = [value]
            values[stored_name] = value
        return entity

    def _build_values(self, entity) -> ndb.Model:
        """`_build`, from a Beam entity's decoded values instead of a protobuf."""
        properties = entity.properties
        if 'class' in properties:
            raise _Fallback('a PolyModel class property')
        model = self._model_class()
        key = entity.key
        same_kind = True
        if key is not None:
            client_key = _client_key(key.path_elements, key.project, key.namespace)
            same_kind = self._unknown_names_ignored(client_key.kind)
            ndb_compat.set_key(model, client_key)
        meanings = getattr(entity, 'meanings', None) or {}
        handlers = self._handlers
        values = ndb_compat.values_of(model)
        base_value = ndb_compat.BaseValue
        for name, value in properties.items():
            handler = handlers.get(name)
            if handler is None:
                handler = handlers[name] = self._handler(name)
            if handler is _IGNORED or (handler is _UNKNOWN and same_kind):
                continue
            if handler is _SLOW or handler is _UNKNOWN:
                raise _Fallback(name)
            stored_name, repeated, meaning_matters, key_class, null_only = handler
            if name in meanings:
                raise _Fallback('a meaning ndb acts on')
            if type(value) is list:  # pylint: disable=unidiomatic-typecheck
                if not repeated:
                    raise _Fallback('a list in a property that is not repeated')
                if null_only and value:
                    raise _Fallback('a value ndb decodes itself')
                values[stored_name] = [
                    None if item is None else base_value(_plain(item, key_class))
                    for item in value]
                continue
            if null_only and value is not None:
                raise _Fallback('a value ndb decodes itself')
            if value is not None:
                value = base_value(_plain(value, key_class))
                if repeated:
                    value = [value]
            values[stored_name] = value
        return model

    def _unknown_names_ignored(self, kind: str) -> bool:
        """Whether ndb's read ignores a stored name the model lacks, for an
        entity of `kind`: when `kind` is the class's name, or names this very
        class (a model whose `_get_kind()` renames its kind). Otherwise (a
        PolyModel's subclass) ndb looks the name up elsewhere: its own path."""
        ignored = self._kinds_ignoring_unknown.get(kind)
        if ignored is None:
            ignored = self._kinds_ignoring_unknown[kind] = (
                kind == self._class_name
                or ndb_compat.model_for_kind(kind) is self._model_class)
        return ignored

    def _handler(self, name: str):
        """What ndb's read does with stored property `name` (model.py,
        `_entity_from_ds_entity`), decided once per name."""
        prop = ndb_compat.property_for_stored_name(self._model_class, name)
        if prop is None:
            # A legacy structured property, or no property at all.
            return _SLOW if '.' in name else _UNKNOWN
        if not isinstance(prop, ndb.Property):
            return _IGNORED        # ignored (on a non-Expando model)
        if isinstance(prop, ndb_model.ModelKey):
            return _SLOW
        if not ndb_compat.stores_plainly(prop):
            return _SLOW
        # Embedded entities are ndb's to decode; an unset one is stored as a
        # null (an empty list), which ndb keeps as None ([]) like any other.
        null_only = isinstance(prop, _SLOW_PROPERTIES)
        # ndb acts on a stored meaning only for a blob property that does not
        # compress (it then decompresses a value stored compressed).
        meaning_matters = (isinstance(prop, ndb.BlobProperty)
                           and not ndb_compat.is_compressed(prop))
        # A KeyProperty hands job code ndb keys around these: cheap to read.
        # Any other property hands over the client key itself, as ndb does.
        key_class = FlatKey if isinstance(prop, ndb.KeyProperty) else datastore.Key
        return (ndb_compat.stored_name(prop), ndb_compat.is_repeated(prop),
                meaning_matters, key_class, null_only)


def _with_flat_key(model: ndb.Model) -> ndb.Model:
    if model.key is not None:
        make_flat(ndb_compat.client_key_of(model.key))
    return model
