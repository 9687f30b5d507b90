"""Reading kinds from the Datastore: every kind's key ranges, by one read.

The read a job compiles to, for any number of kinds:

    queries (one per kind) ─▶ split each into key ranges ─▶ Reshuffle
        ─▶ read the ranges of a bundle, the next page always in flight

- **One read for every kind.** A Flatten of one read per kind ahead of the
  map step made Beam's local runner hold every entity of every kind between
  the stages (a job over two kinds of 10,000 entities: 849 MiB against 253
  for one kind). One read keeps the map step in the read's stage.
- **Splitting** is the `__scatter__` sampling Beam's `ReadFromDatastore`
  uses (`num_splits` key ranges per kind, `SCATTER_KEYS_PER_SPLIT` samples
  each), on the client's public query API.
- **Prefetching.** A worker reads the ranges of its bundle on `READERS`
  threads, each fetching pages while the worker maps the pages already
  fetched (gRPC releases the GIL while it waits), at most `BUFFERED_PAGES`
  ahead; adjacent ranges are read as fewer, longer queries (QUERIES_PER_RUN).
- **Pages bounded by bytes.** The emulator returns up to ~300 entities a
  page whatever their size (300 MB of 1 MiB entities); once a page passes
  `MAX_PAGE_BYTES` the rest of its range is read in pages of as many
  entities as fit, so memory does not grow with the entities' size.
- **Faults.** A query that fails with a retryable status is asked again
  from the cursor after the last page handed on, after a jittered backoff
  (read_retries.py: which statuses, how long, the error after the bound);
  each retry is logged and counted (`read_retries`). Nothing is read twice
  or skipped: the page in flight when the error came was never handed on.
- Entities leave as the protobufs the Datastore sent (in an `EntityPb`): the
  map step builds models from them (lean_models.py), so an entity that fails
  to decode is reported there, by key, and never fails the read.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import queue
import threading
import time
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms import window
from apache_beam.utils.windowed_value import WindowedValue
from google.api_core import exceptions as api_exceptions
from google.cloud import datastore
from google.cloud.datastore import helpers
from google.cloud.datastore_v1.types import entity as entity_types
from google.protobuf.message import Message

from beam_jobs import counters
from beam_jobs import entities
from beam_jobs import target as target_lib
from beam_jobs.io import read_retries
from beam_jobs.lean_models import EntityPb

_LOGGER = logging.getLogger(__name__)

# Two threads keep the JVM busy on both cores while Python maps what
# arrived; more only queue up behind it (bench/README.md).
READERS = 2
BUFFERED_PAGES = 4
# The emulator's CPU per query page grows with what the query has left to
# return, and every query ends in a part page: a 20,000-entity kind read as
# 8-16 queries cost its JVM 6-7 s, as 2 queries 8.3-8.6 s, as 64 queries
# 8.8 s (bench/README.md). So a long run of adjacent ranges (a job asking
# for 64 shards) is read in at most this many queries.
QUERIES_PER_RUN = 16
MAX_PAGE_BYTES = 16 << 20
# Scatter keys sampled per wanted split, as Beam's splitter samples them.
SCATTER_KEYS_PER_SPLIT = 32
# The emulator returns scatter keys 300 a page at ~0.3 s of CPU a page, all
# before any entity is read (64 shards took 2.0 s to split); locally the
# ranges are read by one worker anyway, so there the sample is one page.
EMULATOR_SCATTER_KEYS = 300
_KEY = '__key__'
_ENTITY_PB = entity_types.Entity
# Incremented on the bundle's own thread: Beam's metrics belong to the thread
# that runs the DoFn, and an increment on a reader thread is lost.
_READ_RETRIES = Metrics.counter(counters.METRICS_NAMESPACE, counters.READ_RETRIES)

# A page: the raw entity protobufs (entity_pb2.Entity) the Datastore sent.
Page = list[Message]
# A key as the Datastore orders it (_key_order).
_KeyOrder = list[Union[str, tuple[int, int, str]]]
# A key to look up: (namespace, flat path), as before_images.Identity.
KeyIdentity = tuple[str, Sequence[Union[str, int]]]


@dataclasses.dataclass(frozen=True)
class KindQuery:
    """Every entity of one kind in one namespace of a project's database."""

    kind: str
    project: str
    namespace: Optional[str] = None
    database: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class KeyRange:
    """Keys of `query.kind` in [start, end); None is an open end. `index`
    orders a kind's ranges, so adjacent ones can be read as one."""

    query: KindQuery
    index: int
    start: Optional[datastore.Key] = None
    end: Optional[datastore.Key] = None

    def describe(self) -> str:
        """`kind K, keys from K/a up to K/b, in namespace N of project P` (K/b
        itself is the next range's), for logs and errors."""
        start = entities.key_path(self.start) if self.start is not None else None
        end = entities.key_path(self.end) if self.end is not None else None
        if start and end:
            keys = f'keys from {start} up to {end}'
        elif start or end:
            keys = f'keys from {start}' if start else f'keys up to {end}'
        else:
            keys = 'every key'
        namespace = (f'namespace {self.query.namespace}' if self.query.namespace
                     else 'the default namespace')
        return (f'kind {self.query.kind}, {keys}, in {namespace} '
                f'of project {self.query.project}')


def _client(query: KindQuery) -> datastore.Client:
    return target_lib.client(target_lib.Target(query.project, query.namespace or None,
                                               database=query.database))


def _key_order(key: datastore.Key) -> _KeyOrder:
    """How the Datastore orders keys: by path, kind by kind; within a kind,
    ids (in order) before names (in order)."""
    order: _KeyOrder = [key.project, key.namespace or '']
    flat = list(key.flat_path)
    for position in range(0, len(flat), 2):
        order.append(flat[position])
        if position + 1 < len(flat):
            ident = flat[position + 1]
            order.append((0, ident, '') if isinstance(ident, int) else (1, 0, ident))
    return order


def _split_points(keys: Sequence[datastore.Key], num_splits: int) -> list[datastore.Key]:
    """`num_splits - 1` keys spread evenly over the sorted sample `keys`
    (all of them, if the sample is smaller): each range ends at the last
    sample of its share, so the first range is not the small one."""
    if len(keys) < num_splits - 1:
        return list(keys)
    per_split = max(1.0, len(keys) / (num_splits - 1))
    return [keys[int(round(number * per_split)) - 1] for number in range(1, num_splits)]


def split_ranges(query: KindQuery, num_splits: int,
                 max_scatter_keys: Optional[int] = None,
                 client: Optional[datastore.Client] = None) -> list[KeyRange]:
    """`query` cut into at most `num_splits` key ranges, from a sample of the
    kind's `__scatter__` keys (fewer ranges if the kind has few entities)."""
    if num_splits <= 1:
        return [KeyRange(query, 0)]
    client = client or _client(query)
    limit = (num_splits - 1) * SCATTER_KEYS_PER_SPLIT
    if max_scatter_keys is not None:
        limit = max(num_splits - 1, min(limit, max_scatter_keys))
    scatter = client.query(kind=query.kind, namespace=query.namespace or '')
    scatter.keys_only()
    scatter.order = ['__scatter__']
    keys = sorted((entity.key for entity in scatter.fetch(limit=limit)), key=_key_order)
    # Beam's words, which a run's log has always shown.
    _LOGGER.info('Splitting the query into %d splits', num_splits)
    bounds: list[Optional[datastore.Key]] = [None, *_split_points(keys, num_splits), None]
    return [KeyRange(query, index, bounds[index], bounds[index + 1])
            for index in range(len(bounds) - 1)]


def merge_adjacent(ranges: Sequence[KeyRange], queries: int) -> list[KeyRange]:
    """Ranges of one kind whose indexes follow each other, read in at most
    `queries` queries per run of adjacent ranges (as evenly as the ranges
    allow); ranges not next to each other stay apart."""
    runs: list[list[KeyRange]] = []
    for key_range in sorted(ranges, key=lambda r: (r.query.kind, r.index)):
        last = runs[-1][-1] if runs else None
        if last and last.query == key_range.query and last.index + 1 == key_range.index:
            runs[-1].append(key_range)
        else:
            runs.append([key_range])
    merged = []
    for run in runs:
        parts = min(len(run), max(1, queries))
        for part in range(parts):
            group = run[part * len(run) // parts:(part + 1) * len(run) // parts]
            merged.append(KeyRange(group[0].query, group[0].index,
                                   group[0].start, group[-1].end))
    return merged


def _range_query(client: datastore.Client, key_range: KeyRange) -> datastore.query.Query:
    query: datastore.query.Query = client.query(kind=key_range.query.kind,
                                                namespace=key_range.query.namespace or '')
    if key_range.start is not None:
        query.add_filter(filter=datastore.query.PropertyFilter(_KEY, '>=', key_range.start))
    if key_range.end is not None:
        query.add_filter(filter=datastore.query.PropertyFilter(_KEY, '<', key_range.end))
    return query


def _raw(unused_iterator: object, entity: entity_types.Entity) -> Message:
    return _ENTITY_PB.pb(entity)


@dataclasses.dataclass
class _Position:
    """How far a range's read has got: the cursor after the last page handed
    on (None: the range's start), and the page size a too-large page set
    (None: the Datastore's own pages)."""

    cursor: Optional[bytes] = None
    limit: Optional[int] = None
    done: bool = False


def _sleep(delay: float) -> bool:
    time.sleep(delay)
    return True


def read_pages(client: datastore.Client, key_range: KeyRange,
               max_page_bytes: int = MAX_PAGE_BYTES,
               backoff: Optional[read_retries.Backoff] = None,
               before_retry: Callable[[float], bool] = _sleep) -> Iterator[Page]:
    """The pages of a key range, each a list of entity protobufs, none much
    over `max_page_bytes` once a page has shown how large the entities are.

    A query that fails with a retryable status is asked again from the
    cursor after the last page handed on, `backoff` permitting (the module's
    constants by default); `before_retry(delay)` waits before each retry
    and may stop the read by returning False.
    """
    query = _range_query(client, key_range)
    backoff = backoff or read_retries.Backoff.configured()
    position = _Position()
    failures = 0
    while not position.done:
        try:
            for page in _fetch(query, position, max_page_bytes):
                failures = 0
                yield page
        except api_exceptions.GoogleAPICallError as error:
            if not read_retries.is_retryable(error):
                raise
            failures += 1
            if failures >= backoff.attempts:
                raise read_retries.gave_up(key_range.describe(), error, failures) from error
            delay = backoff.delay(failures)
            _LOGGER.warning('Reading %s: %s; asking again from its last cursor in '
                            '%.1f s (try %d of %d).', key_range.describe(),
                            read_retries.describe(error), delay, failures + 1,
                            backoff.attempts)
            if not before_retry(delay):
                return


def _fetch(query: datastore.query.Query, position: _Position,
           max_page_bytes: int) -> Iterator[Page]:
    """One query from `position`, page by page. `position` moves past a page
    once it has been handed on, so a query that fails resumes after it.

    The client's iterator builds the requests and follows the cursors; its
    conversion of each entity is skipped, and so is its own retry.
    """
    iterator = query.fetch(start_cursor=position.cursor, limit=position.limit,
                           retry=read_retries.NO_CLIENT_RETRY,
                           timeout=read_retries.QUERY_TIMEOUT_SECS)
    iterator.item_to_value = _raw
    fetched = 0
    for page in iterator.pages:
        entity_pbs = list(page)
        fetched += len(entity_pbs)
        if entity_pbs:
            yield entity_pbs
        position.cursor = iterator.next_page_token
        size = sum(entity.ByteSize() for entity in entity_pbs)
        if size > max_page_bytes and len(entity_pbs) > 1:
            # Too large: read on from this page's end in pages that fit.
            position.limit = max(1, int(max_page_bytes * len(entity_pbs) // size))
            break
    else:
        # The whole range in the Datastore's own pages, or a limited fetch
        # that came back short: nothing is left.
        if position.limit is None or fetched < position.limit:
            position.done = True
    if position.cursor is None:
        position.done = True


class _Signal(enum.Enum):
    """What a reader thread puts on the queue besides pages and errors."""

    DONE = enum.auto()
    RETRIED = enum.auto()


# What the reader threads hand the consumer.
_Item = Union[Page, BaseException, _Signal]


class _Prefetch:
    """Pages of several key ranges, read on threads, handed out as they come.

    `READERS` threads take the ranges in turn; a bounded queue holds at most
    `BUFFERED_PAGES` pages, so memory does not grow with the kind. Closing
    (or leaving the loop early) stops the threads at their next page, or
    in their backoff. A thread's retry reaches the consumer as `_RETRIED`,
    to be counted on the DoFn's own thread.
    """

    def __init__(self, ranges: Sequence[KeyRange], readers: int, buffered: int,
                 backoff: Optional[read_retries.Backoff] = None):
        self._backoff = backoff
        self._todo: queue.Queue[KeyRange] = queue.Queue()
        for key_range in ranges:
            self._todo.put(key_range)
        self._pages: queue.Queue[_Item] = queue.Queue(maxsize=max(1, buffered))
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._read, daemon=True,
                                          name=f'datastore-read-{n}')
                         for n in range(max(1, min(readers, len(ranges))))]

    def __iter__(self) -> Iterator[Message]:
        for thread in self._threads:
            thread.start()
        running = len(self._threads)
        try:
            while running:
                page = self._pages.get()
                if page is _Signal.DONE:
                    running -= 1
                elif page is _Signal.RETRIED:
                    _READ_RETRIES.inc()
                elif isinstance(page, BaseException):
                    raise page
                else:
                    yield from page
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        # Free any thread blocked on a full queue.
        while True:
            try:
                self._pages.get_nowait()
            except queue.Empty:
                break

    def _put(self, item: _Item) -> bool:
        while not self._stop.is_set():
            try:
                self._pages.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _before_retry(self, delay: float) -> bool:
        """Count the retry, then wait `delay` unless the prefetch is closed."""
        return self._put(_Signal.RETRIED) and not self._stop.wait(delay)

    def _read(self) -> None:
        clients: dict[tuple[str, Optional[str], Optional[str]], datastore.Client] = {}
        try:
            while not self._stop.is_set():
                try:
                    key_range = self._todo.get_nowait()
                except queue.Empty:
                    break
                where = (key_range.query.project, key_range.query.namespace,
                         key_range.query.database)
                client = clients.get(where)
                if client is None:
                    client = clients[where] = _client(key_range.query)
                for page in read_pages(client, key_range, backoff=self._backoff,
                                       before_retry=self._before_retry):
                    if not self._put(page):
                        return
        except BaseException as error:  # pylint: disable=broad-except
            self._put(error)
            return
        self._put(_Signal.DONE)


class _ReadRangesFn(beam.DoFn):
    """A bundle's key ranges → their entities, prefetched on threads.

    The ranges are collected as they arrive and read when the bundle ends,
    when all of them are known: that is what lets the next range's first
    page be in flight while the last page of another is mapped.
    """

    def __init__(self, readers: int = READERS, buffered: int = BUFFERED_PAGES,
                 backoff: Optional[read_retries.Backoff] = None):
        super().__init__()  # type: ignore[no-untyped-call]  # Beam's DoFn.__init__ is untyped
        self._readers = readers
        self._buffered = buffered
        self._backoff = backoff

    def start_bundle(self) -> None:
        self._ranges: list[KeyRange] = []

    # Types in comments: Beam would take annotations here as its type hints.
    def process(self, key_range):  # type: (KeyRange) -> None
        self._ranges.append(key_range)

    def finish_bundle(self) -> Iterator[WindowedValue]:
        ranges, self._ranges = self._ranges, []
        if not ranges:
            return
        merged = merge_adjacent(ranges, QUERIES_PER_RUN)
        for entity_pb in _Prefetch(merged, self._readers, self._buffered, self._backoff):
            yield window.GlobalWindows.windowed_value(EntityPb(entity_pb))


class _SplitFn(beam.DoFn):

    def __init__(self, num_splits: int, max_scatter_keys: Optional[int],
                 shown: Optional[dict[str, Any]] = None):
        super().__init__()  # type: ignore[no-untyped-call]  # Beam's DoFn.__init__ is untyped
        self._num_splits = num_splits
        self._max_scatter_keys = max_scatter_keys
        self._shown = shown or {}

    def display_data(self) -> dict[str, Any]:
        # What is read, on the step itself: Dataflow's graph keeps a step's
        # display data, not a composite's.
        return self._shown

    def process(self, query):  # type: (KindQuery) -> list[KeyRange]
        return split_ranges(query, self._num_splits, self._max_scatter_keys)


class ReadKinds(beam.PTransform[beam.pvalue.PBegin, beam.PCollection[EntityPb]]):
    """pbegin → every entity of `kinds` in `target`, as entity protobufs
    (with `namespaces`, in each of those namespaces of its database instead
    of the target's one: one read over all of them, its splits across all).

    Each kind (in each namespace) is split into `num_splits` key ranges (sampling at most
    `max_scatter_keys` scatter keys, if given; on the emulator one page of
    them); every range of every kind is read by the one `Read` step (see
    the module docstring). `backoff` bounds its retries (read_retries.py's
    constants, as they are when the read is built, by default).
    """

    def __init__(self, kinds: Sequence[str], target: target_lib.Target,
                 num_splits: int, max_scatter_keys: Optional[int] = None,
                 readers: int = READERS, buffered: Optional[int] = None,
                 backoff: Optional[read_retries.Backoff] = None,
                 namespaces: Optional[Sequence[str]] = None):
        super().__init__()
        if not kinds:
            raise ValueError('ReadKinds needs at least one kind to read.')
        if num_splits < 1:
            raise ValueError(f'num_splits must be a positive number, not {num_splits!r}.')
        spaces = [target.namespace] if namespaces is None else [
            namespace or None for namespace in namespaces]
        self._queries = [KindQuery(kind, target.project, namespace, target.database)
                         for namespace in spaces for kind in kinds]
        self._num_splits = num_splits
        # A kind's splits are shared by its namespaces: four namespaces of
        # 25,000 are read in as many queries as one of 100,000, not four
        # times as many (each with its own scatter sample and part page).
        self._splits_each = max(1, -(-num_splits // len(spaces)))
        if max_scatter_keys is None and target_lib.is_emulator():
            max_scatter_keys = EMULATOR_SCATTER_KEYS
        self._max_scatter_keys = max_scatter_keys
        self._readers = readers
        self._buffered = BUFFERED_PAGES if buffered is None else buffered
        self._backoff = backoff or read_retries.Backoff.configured()

    def display_data(self) -> dict[str, Any]:
        first = self._queries[0]
        return {'kinds': ', '.join(dict.fromkeys(query.kind for query in self._queries)),
                'namespaces': ', '.join(dict.fromkeys(query.namespace or '(default)'
                                                      for query in self._queries)),
                'database': target_lib.database_name(first.database),
                'num_splits': self._num_splits}

    # Types in a comment: Beam would take annotations here as its type hints.
    def expand(self, pbegin):  # type: (beam.pvalue.PBegin) -> beam.PCollection[EntityPb]
        # Beam's own step names (ReadFromDatastore's), so a graph reads the
        # same to whoever knows Beam's.
        read: beam.PCollection[EntityPb] = (
            pbegin.pipeline
            | 'UserQuery' >> beam.Create(self._queries)
            | 'SplitQuery' >> beam.ParDo(_SplitFn(
                self._splits_each, self._max_scatter_keys, self.display_data()))
            | 'Reshuffle' >> beam.Reshuffle()
            | 'Read' >> beam.ParDo(_ReadRangesFn(self._readers, self._buffered,
                                                 self._backoff))
        )
        return read


class _LookUpFn(beam.DoFn):
    """Identities `(namespace, flat path)` → the entities still there, looked
    up LOOKUP_BATCH at a time."""

    LOOKUP_BATCH = 500

    def __init__(self, target: target_lib.Target):
        super().__init__()  # type: ignore[no-untyped-call]  # Beam's DoFn.__init__ is untyped
        self._target = target

    def setup(self) -> None:
        self._client = target_lib.client(self._target)

    def start_bundle(self) -> None:
        self._keys: list[datastore.Key] = []

    # Types in comments: Beam would take annotations here as its type hints.
    def process(self, ident):  # type: (KeyIdentity) -> Iterator[EntityPb]
        namespace, flat = ident
        self._keys.append(self._client.key(*flat, namespace=namespace or None))
        if len(self._keys) >= self.LOOKUP_BATCH:
            yield from self._look_up()

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for entity_pb in self._look_up():
            yield window.GlobalWindows.windowed_value(entity_pb)

    def _look_up(self) -> list[EntityPb]:
        keys, self._keys = self._keys, []
        if not keys:
            return []
        return [EntityPb(entity_types.Entity.pb(helpers.entity_to_protobuf(entity)))
                for entity in self._client.get_multi(keys)]


class LookUpKeys(beam.PTransform[beam.pvalue.PBegin, beam.PCollection[EntityPb]]):
    """pbegin → the entities of these keys (identities), as a read yields
    them; a key no longer there yields nothing."""

    def __init__(self, keys: Sequence[KeyIdentity], target: target_lib.Target):
        super().__init__()
        self._keys = [(namespace, list(flat)) for namespace, flat in keys]
        self._target = target

    # Types in a comment: Beam would take annotations here as its type hints.
    def expand(self, pbegin):  # type: (beam.pvalue.PBegin) -> beam.PCollection[EntityPb]
        looked_up: beam.PCollection[EntityPb] = (
            pbegin.pipeline
            | 'Keys' >> beam.Create(self._keys)
            | 'Reshuffle' >> beam.Reshuffle()
            | 'Look up' >> beam.ParDo(_LookUpFn(self._target)))
        return looked_up


def estimated_count(target: target_lib.Target, kind: str) -> Optional[int]:
    """How many entities a kind holds, from the Datastore's kind statistics
    (`__Stat_Kind__` / `__Stat_Ns_Kind__`, refreshed about daily), or None
    where there are none: the emulator keeps no statistics."""
    stat_kind = '__Stat_Ns_Kind__' if target.namespace else '__Stat_Kind__'
    try:
        query = target_lib.client(target).query(kind=stat_kind)
        query.add_filter(filter=datastore.query.PropertyFilter('kind_name', '=', kind))
        stats = list(query.fetch(limit=1, retry=None, timeout=5))
    except Exception:  # pylint: disable=broad-except
        return None
    return int(stats[0]['count']) if stats and 'count' in stats[0] else None
