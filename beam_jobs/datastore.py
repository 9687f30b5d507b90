"""Kinds in, ndb models out; writes out.

Everything that touches the Datastore's data model lives here: which project
and namespace a run uses, the ndb context job code runs inside, reading a kind
as ndb model instances, and turning models and keys back into Beam's entities
for the write transforms.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import threading
from typing import Iterator, Optional, Type

import apache_beam as beam
from apache_beam.io.gcp.datastore.v1new import datastoreio
from apache_beam.io.gcp.datastore.v1new import types as beam_types
from google.auth import credentials as auth_credentials
from google.cloud import datastore
from google.cloud import ndb

from beam_jobs import datastore_read
from beam_jobs import lean_models

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


def _credentials():
    # The emulator takes no credentials; asking for real ones on a laptop
    # would fail. On Dataflow the default credentials are the right ones.
    if is_emulator():
        return auth_credentials.AnonymousCredentials()
    return None


def client(target: Target) -> datastore.Client:
    """A plain Datastore client for the target (used for run records)."""
    # This client finds the emulator (and refuses explicit credentials for
    # it) by itself, and the default credentials otherwise.
    return datastore.Client(project=target.project, namespace=target.namespace)


class NdbContext:
    """An ndb context that job code runs inside, reusable per element.

    Beam fuses stages, so a DoFn that yields while a context is open runs the
    next stage inside it, and that stage could not open its own. Callers
    therefore finish their work inside `active()` and yield afterwards. When a
    context is already open on this thread (a test calling job code
    directly), it is reused rather than nested.
    """

    def __init__(self, target: Target):
        self._target = target
        self._client: Optional[ndb.Client] = None
        self._local = threading.local()

    def active(self) -> '_Active':
        """A context manager: this thread's context is current inside it."""
        active = getattr(self._local, 'active', None)
        if active is None or active.busy:
            active = _Active(self)
            if getattr(self._local, 'active', None) is None:
                self._local.active = active
        return active

    def _thread_context(self) -> ndb.context.Context:
        # One ndb Context per thread, made current for each use: building a
        # fresh one per element (`client.context()`) cost 17 us against 4 us
        # (bench/README.md), a third of the framework's per-item cost. Its
        # cache is emptied after each use, so elements never share entities,
        # and a use that fails drops it, so no half-run work leaks on.
        context = getattr(self._local, 'context', None)
        if context is None:
            context = self._local.context = ndb.context.Context(
                self._ndb_client(), legacy_data=True)
        return context

    def _drop_context(self) -> None:
        self._local.context = None

    def _ndb_client(self) -> ndb.Client:
        if self._client is None:
            credentials = _credentials()
            if credentials is None and not os.environ.get(
                    'GOOGLE_APPLICATION_CREDENTIALS'):
                # Building keys and models needs no credentials; only real
                # RPCs do, and those pick the defaults up on Dataflow.
                credentials = _default_or_anonymous_credentials()
            self._client = ndb.Client(project=self._target.project,
                                      namespace=self._target.namespace,
                                      credentials=credentials)
        return self._client

    def __getstate__(self):
        # ndb clients hold channels that do not pickle; workers build their own.
        return {'_target': self._target, '_client': None}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()


# ndb keeps the current context in two context variables; `Context.use()`
# sets them through a generator. Per element that generator (with the event
# loop run and the cache clear) cost ~10 us on this machine, more than a job's
# `map`; `_Active` does the same steps directly where ndb's internals are as
# expected (google-cloud-ndb 2.7.1), and goes through `use()` otherwise.
_NDB_STATE = getattr(ndb.context, '_state', None)
_CONTEXT_VAR = getattr(_NDB_STATE, '_context', None)
_TOPLEVEL_VAR = getattr(_NDB_STATE, '_toplevel_context', None)
_LEAN_SWITCH = (isinstance(_CONTEXT_VAR, contextvars.ContextVar)
                and isinstance(_TOPLEVEL_VAR, contextvars.ContextVar))


def _loop_has_work(loop) -> bool:
    try:
        return bool(loop.current or loop.idlers or loop.queue or loop.rpcs)
    except AttributeError:
        return True


class _Active:
    """`NdbContext.active()`: one reusable context manager per thread.

    Inside it the thread's ndb context is current. On a clean exit the
    context's event loop runs what job code left pending; on any exit its
    cache is emptied; an exception drops the context. When a context is
    already current (a test calling job code inside its own), that one is
    used and left alone.
    """

    __slots__ = ('_owner', '_context', '_use', 'busy')

    def __init__(self, owner: NdbContext):
        self._owner = owner
        self._context = None
        self._use = None
        self.busy = False

    def __enter__(self) -> None:
        current = (_CONTEXT_VAR.get() if _LEAN_SWITCH else
                   ndb.context.get_context(raise_context_error=False))
        if current is not None:
            self._context = None
            return
        self.busy = True
        context = self._context = self._owner._thread_context()  # pylint: disable=protected-access
        if _LEAN_SWITCH:
            # What Context.use() does when no context is current.
            _CONTEXT_VAR.set(context)
            _TOPLEVEL_VAR.set(context)
            context.rpc_time = 0
            context.wait_time = 0
        else:
            self._use = context.use()
            self._use.__enter__()

    def __exit__(self, exc_type, exc, traceback) -> bool:
        context = self._context
        if context is None:
            return False
        self._context = None
        try:
            if exc_type is None and _loop_has_work(context.eventloop):
                try:
                    context.eventloop.run()
                except BaseException:
                    self._owner._drop_context()  # pylint: disable=protected-access
                    raise
            elif exc_type is not None:
                self._owner._drop_context()  # pylint: disable=protected-access
        finally:
            if _LEAN_SWITCH:
                _TOPLEVEL_VAR.set(None)
                _CONTEXT_VAR.set(None)
            else:
                use, self._use = self._use, None
                use.__exit__(None, None, None)
            if context.cache:
                context.cache.clear()
            self.busy = False
        return False


def _default_or_anonymous_credentials():
    import google.auth
    import google.auth.exceptions
    try:
        credentials, _ = google.auth.default()
        return credentials
    except google.auth.exceptions.DefaultCredentialsError:
        return auth_credentials.AnonymousCredentials()


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


# The entities a Datastore read yields (datastore_read.py): raw protobufs.
ENTITY_PB = lean_models.ENTITY_PB
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
    if isinstance(entity, ENTITY_PB):
        return model_builder(model_class).build(entity)
    ds_entity = entity.to_client_entity()
    # Beam's read turns a keyless embedded entity (a LocalStructuredProperty)
    # into a dict, which ndb cannot decode: make it an entity again.
    for name, value in list(ds_entity.items()):
        if type(value) is dict:  # pylint: disable=unidiomatic-typecheck
            ds_entity[name] = _embedded(value)
        elif isinstance(value, list) and any(type(v) is dict for v in value):  # pylint: disable=unidiomatic-typecheck
            ds_entity[name] = [_embedded(v) if type(v) is dict else v  # pylint: disable=unidiomatic-typecheck
                               for v in value]
    # ndb has no public "entity to model" call; this is the one its own
    # reads use, so properties decode exactly as `Model.get()` would.
    model = ndb.model._entity_from_ds_entity(  # pylint: disable=protected-access
        ds_entity, model_class=model_class)
    if model._key is not None:  # pylint: disable=protected-access
        # Same key, cheap to read (`item.id`): see lean_models.FlatKey.
        lean_models.make_flat(model._key._key)  # pylint: disable=protected-access
    return model


def _embedded(values: dict) -> datastore.Entity:
    embedded = datastore.Entity()
    embedded.update(values)
    return embedded


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
    if isinstance(entity, ENTITY_PB):
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
        return pbegin | datastore_read.ReadKeyRanges(query, self._num_splits)
