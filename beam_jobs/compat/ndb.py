"""google-cloud-ndb internals, written for google-cloud-ndb 2.7.1.

Why each is used rather than ndb's public way:

- **Models from stored values** (lean_models.py). ndb's read turns an entity
  protobuf into a client entity and then a model; for the common property
  types the outcome is a model whose `_values` holds each stored value
  wrapped in `_BaseValue`, which ndb converts to the user's value on first
  read. Writing `_values` directly halves the map step's cost. Which stored
  names are plain is decided with the lookups ndb's own read makes
  (`_code_name_from_stored_name`, a property's `_name`, `_repeated`,
  `_compressed`, and whether its class overrides `_from_datastore` or
  `_store_value`). Everything else goes through ndb's own conversions,
  `_entity_from_ds_entity` and `_entity_to_ds_entity` (with the put hooks
  `Model.put()` runs first).
- **Keys.** `Key._from_ds_key` wraps a client key without re-validating it;
  `Key._key` is the client key inside an ndb key.
- **The current context** (ndb_context.py). ndb keeps it in two context
  variables that `Context.use()` sets through a generator; per element that
  cost more than a job's own `map`, so the map step sets them directly.
- **`Model._get_kind()`**, the kind a model class is stored as (ndb's own
  documented way to rename a kind; underscored only to stay out of the
  property namespace), and `Model._lookup_model(kind)`, the class ndb reads a
  kind as (the lean builder decides as ndb does whether a stored name the
  model lacks is ignored).
"""

from __future__ import annotations

import contextvars
from typing import Optional, Type

from google.cloud import datastore
from google.cloud import ndb
from google.cloud.ndb import context as ndb_context
from google.cloud.ndb import model as ndb_model

from beam_jobs import compat

WRITTEN_FOR = '2.7.1'


def _state_vars() -> tuple:
    state = ndb_context._state  # pylint: disable=protected-access
    return state._context, state._toplevel_context  # pylint: disable=protected-access


def _loop_has_its_queues() -> bool:
    loop = ndb_context._eventloop.EventLoop()  # pylint: disable=protected-access
    return all(hasattr(loop, name) for name in ('current', 'idlers', 'queue', 'rpcs'))


def _property_traits() -> bool:
    prop = ndb.BlobProperty('x', repeated=True, compressed=True)
    return (prop._name, prop._repeated, prop._compressed) == ('x', True, True)  # pylint: disable=protected-access


compat.require('google-cloud-ndb', WRITTEN_FOR, __name__, [
    ('model._BaseValue', lambda: ndb_model._BaseValue('v').b_val == 'v'),  # pylint: disable=protected-access
    ('Model._values', lambda: isinstance(ndb.Model()._values, dict)),  # pylint: disable=protected-access
    ('Model._get_kind', lambda: ndb.Model._get_kind() == 'Model'),  # pylint: disable=protected-access
    ('Model._lookup_model', lambda: callable(ndb.Model._lookup_model)),  # pylint: disable=protected-access
    ('Model._code_name_from_stored_name',
     lambda: ndb.Model._code_name_from_stored_name('x') == 'x'),  # pylint: disable=protected-access
    ('Model._pre_put_hook, Model._prepare_for_put',
     lambda: callable(ndb.Model._pre_put_hook) and callable(ndb.Model._prepare_for_put)),  # pylint: disable=protected-access
    ('model._entity_from_ds_entity, model._entity_to_ds_entity',
     lambda: callable(ndb_model._entity_from_ds_entity) and callable(ndb_model._entity_to_ds_entity)),  # pylint: disable=protected-access
    ('Key._from_ds_key, Key._key',
     lambda: ndb.Key._from_ds_key(datastore.Key('K', 1, project='p'))._key.id == 1),  # pylint: disable=protected-access
    ('Property._name, ._repeated, ._compressed', _property_traits),
    ('Property._from_datastore, Property._store_value',
     lambda: callable(ndb.Property._from_datastore) and callable(ndb.Property._store_value)),  # pylint: disable=protected-access
    ('context._state._context, context._state._toplevel_context',
     lambda: all(isinstance(var, contextvars.ContextVar) for var in _state_vars())),
    ('context._eventloop.EventLoop .current, .idlers, .queue, .rpcs', _loop_has_its_queues),
])

BaseValue = ndb_model._BaseValue  # pylint: disable=protected-access
_CONTEXT_VAR, _TOPLEVEL_VAR = _state_vars()
# Property classes whose stored values ndb hands over as they are.
_PLAIN_FROM_DATASTORE = (ndb.Property._from_datastore,  # pylint: disable=protected-access
                         ndb.BlobProperty._from_datastore)  # pylint: disable=protected-access


def kind_of(model_class: Type[ndb.Model]) -> str:
    """The kind `model_class` is stored as."""
    return model_class._get_kind()  # pylint: disable=protected-access


def model_for_kind(kind: str) -> Optional[Type[ndb.Model]]:
    """The model class ndb reads entities of `kind` as (None if none)."""
    try:
        return ndb.Model._lookup_model(kind)  # pylint: disable=protected-access
    except ndb.KindError:
        return None


def values_of(model: ndb.Model) -> dict:
    """The model's stored values by stored name (`_BaseValue`-wrapped)."""
    return model._values  # pylint: disable=protected-access


def set_key(model: ndb.Model, client_key: datastore.Key) -> None:
    """Give `model` the ndb key wrapping `client_key`, unchecked."""
    model._key = ndb.Key._from_ds_key(client_key)  # pylint: disable=protected-access


def client_key_of(key: ndb.Key) -> datastore.Key:
    """The google-cloud-datastore key inside an ndb key."""
    return key._key  # pylint: disable=protected-access


def from_client_entity(entity: datastore.Entity,
                       model_class: Type[ndb.Model]) -> ndb.Model:
    """ndb's own decoding of a client entity, as `Model.get()` does it."""
    return ndb_model._entity_from_ds_entity(entity, model_class=model_class)  # pylint: disable=protected-access


def to_client_entity(model: ndb.Model) -> datastore.Entity:
    """What `Model.put()` sends: its put hooks and auto_now fields run first."""
    model._pre_put_hook()  # pylint: disable=protected-access
    model._prepare_for_put()  # pylint: disable=protected-access
    return ndb_model._entity_to_ds_entity(model)  # pylint: disable=protected-access


def property_for_stored_name(model_class: Type[ndb.Model], name: str):
    """The class attribute a stored property name maps to (or None), by the
    lookup ndb's read makes."""
    return getattr(model_class,
                   model_class._code_name_from_stored_name(name), None)  # pylint: disable=protected-access


def stored_name(prop: ndb.Property) -> str:
    return prop._name  # pylint: disable=protected-access


def is_repeated(prop: ndb.Property) -> bool:
    return bool(prop._repeated)  # pylint: disable=protected-access


def is_compressed(prop: ndb.Property) -> bool:
    return bool(getattr(prop, '_compressed', False))


def stores_plainly(prop: ndb.Property) -> bool:
    """Whether ndb reads the property's stored value as it is (its class
    overrides neither how values come from the Datastore nor how they are
    stored)."""
    cls = type(prop)
    return (cls._from_datastore in _PLAIN_FROM_DATASTORE  # pylint: disable=protected-access
            and cls._store_value is ndb.Property._store_value)  # pylint: disable=protected-access


def current_context():
    """The ndb context current on this thread, or None."""
    return _CONTEXT_VAR.get()


def make_current(context) -> None:
    """What `Context.use()` does when no context is current."""
    _CONTEXT_VAR.set(context)
    _TOPLEVEL_VAR.set(context)
    context.rpc_time = 0
    context.wait_time = 0


def clear_current() -> None:
    _TOPLEVEL_VAR.set(None)
    _CONTEXT_VAR.set(None)


def loop_has_work(loop) -> bool:
    """Whether the event loop's `run()` would do anything (what its `clear`
    tests)."""
    return bool(loop.current or loop.idlers or loop.queue or loop.rpcs)


def new_context(client: ndb.Client, legacy_data: bool = True):
    """A context of `client`, not yet current (what `client.context()`
    builds before it enters it)."""
    return ndb_context.Context(client, legacy_data=legacy_data)
