"""The ndb context job code runs inside, made current cheaply per element.

Building ndb models and keys needs a current ndb context, and job code may do
ndb RPCs, so the map and reduce steps run job code inside one. Beam fuses
stages, so a DoFn that yields while a context is open runs the next stage
inside it, and that stage could not open its own: callers finish their work
inside `active()` (or `run()`) and yield afterwards.

ndb keeps the current context in two context variables that `Context.use()`
sets through a generator; per element that generator (with the event loop run
and the cache clear) cost ~10 us here, more than a job's `map`. This module
does the same steps directly, through `beam_jobs.compat.ndb`.
"""

from __future__ import annotations

import contextvars
import os
import threading
from typing import TYPE_CHECKING, Literal, Optional

from google.auth import credentials as auth_credentials
from google.cloud import ndb

from beam_jobs.compat import ndb as ndb_compat

if TYPE_CHECKING:
    from beam_jobs.target import Target


def _credentials():
    # The emulator takes no credentials; asking for real ones on a laptop
    # would fail. On Dataflow the default credentials are the right ones.
    if os.environ.get('DATASTORE_EMULATOR_HOST'):    # target.is_emulator()
        return auth_credentials.AnonymousCredentials()
    return None


class NdbContext:
    """An ndb context that job code runs inside, reusable per element.

    Callers finish their work inside `active()` or `run()` and yield
    afterwards (see the module docstring). When a context is already open on
    this thread (a test calling job code directly), it is reused rather than
    nested.
    """

    def __init__(self, target: 'Target'):
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

    def run(self, func, *args):
        """`func(*args)` with this thread's context current, as inside
        `active()`; for the map step, whose `func` runs `map` for a batch of
        elements, calling `after_each()` between them.

        The context is current inside a `contextvars.Context` of its own,
        entered for the call, rather than set and reset around it: ndb keeps
        the current context in context variables, and setting them around
        every element cost more than a job's own `map`.
        """
        local = self._local
        if ndb_compat.current_context() is not None:
            local.owned = None
            return func(*args)      # a context is already current: use it
        variables = getattr(local, 'variables', None)
        context = getattr(local, 'context', None)
        if variables is None or context is None:
            context = self.thread_context()
            variables = local.variables = contextvars.Context()
            variables.run(ndb_compat.make_current, context)
        # What Context.use() does when it makes a top-level context current.
        context.rpc_time = 0
        context.wait_time = 0
        local.owned = context
        try:
            result = variables.run(func, *args)
            if ndb_compat.loop_has_work(context.eventloop):
                variables.run(context.eventloop.run)
        except BaseException:
            self.drop_context()
            raise
        finally:
            local.owned = None
            if context.cache:
                context.cache.clear()
        return result

    def after_each(self) -> None:
        """Inside `run`: end one element's use of the context as leaving
        `active()` would (run what it left on the event loop, empty the
        cache), so elements never share cached entities. Nothing to do when
        `run` found a context of the caller's current."""
        context = getattr(self._local, 'owned', None)
        if context is None:
            return
        loop = context.eventloop
        # ndb_compat.loop_has_work, inlined: this runs once per element.
        if loop.current or loop.idlers or loop.queue or loop.rpcs:
            loop.run()
        if context.cache:
            context.cache.clear()
        context.rpc_time = 0
        context.wait_time = 0

    def thread_context(self) -> ndb.context.Context:
        # One ndb Context per thread, made current for each use: building a
        # fresh one per element (`client.context()`) cost 17 us against 4 us
        # (bench/README.md), a third of the framework's per-item cost. Its
        # cache is emptied after each use, so elements never share entities,
        # and a use that fails drops it, so no half-run work leaks on.
        context = getattr(self._local, 'context', None)
        if context is None:
            context = self._local.context = ndb_compat.new_context(
                self._ndb_client(), legacy_data=True)
        return context

    @staticmethod
    def use_namespace(namespace: Optional[str]) -> None:
        """Inside `run`: models made without a namespace go to `namespace`
        (None: the default one) until the context is left, as App Engine's
        namespace_manager had it. The context made current shares the event
        loop and cache of the one it replaces."""
        current = ndb_compat.current_context()
        if current is not None:
            ndb_compat.make_current(current.new(namespace=namespace or None))

    def drop_context(self) -> None:
        self._local.context = None
        self._local.variables = None

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
                                      database=self._target.database,
                                      credentials=credentials)
        return self._client

    def __getstate__(self):
        # ndb clients hold channels that do not pickle; workers build their own.
        return {'_target': self._target, '_client': None}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()


class _Active:
    """`NdbContext.active()`: one reusable context manager per thread.

    Inside it the thread's ndb context is current. On a clean exit the
    context's event loop runs what job code left pending; on any exit its
    cache is emptied; an exception drops the context. When a context is
    already current (a test calling job code inside its own), that one is
    used and left alone.
    """

    __slots__ = ('_owner', '_entered', 'busy')

    @property
    def entered(self):
        """The context this made current, or None (one was already)."""
        return self._entered

    def __init__(self, owner: NdbContext):
        self._owner = owner
        self._entered = None
        self.busy = False

    def __enter__(self) -> '_Active':
        self._enter()
        return self

    def _enter(self) -> None:
        if ndb_compat.current_context() is not None:
            return
        context = self._entered = self._owner.thread_context()
        self.busy = True
        ndb_compat.make_current(context)

    def __exit__(self, exc_type, exc, traceback) -> Literal[False]:
        context = self._entered
        if context is None:
            return False
        self._entered = None
        try:
            if exc_type is not None:
                self._owner.drop_context()
            elif ndb_compat.loop_has_work(context.eventloop):
                try:
                    context.eventloop.run()
                except BaseException:
                    self._owner.drop_context()
                    raise
        finally:
            ndb_compat.clear_current()
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
