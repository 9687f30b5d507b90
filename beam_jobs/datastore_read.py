"""Reading a kind in key ranges, with the next page always in flight.

Beam's `ReadFromDatastore` splits a query into key ranges (`query_splitter`,
over `__scatter__`), spreads them over workers (`Reshuffle`) and reads each
range one page after another, turning every entity into a client entity and
then a Beam entity. Locally that left the two halves of a run taking turns:
the emulator's JVM answered a page while Python waited, then Python decoded
and mapped it while the JVM waited (bench/README.md has the profile). Here:

- splitting is Beam's own (`query_splitter`): `shard_count` key ranges,
  spread over workers the same way;
- a worker reads all the ranges of its bundle on `READERS` threads, each
  fetching its pages while the worker maps the pages already fetched (gRPC
  releases the GIL while it waits), at most `BUFFERED_PAGES` pages ahead;
- ranges next to each other in a bundle are read as fewer, longer ranges
  (the same entities, fewer queries: see QUERIES_PER_RUN);
- entities leave as the protobufs the Datastore sent (in an `EntityPb`):
  the map step builds models from them (lean_models.py), so an entity that
  fails to decode is reported there, by key, and never fails the read.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Iterator, Optional, Sequence

import apache_beam as beam
from apache_beam.io.gcp.datastore.v1new import helper
from apache_beam.io.gcp.datastore.v1new import query_splitter
from apache_beam.io.gcp.datastore.v1new import types as beam_types
from apache_beam.transforms import window

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
_KEY = query_splitter.KEY_PROPERTY_NAME


def split_ranges(query: beam_types.Query, num_splits: int,
                 max_scatter_keys: Optional[int] = None) -> list[tuple]:
    """`query` cut into `num_splits` key ranges as Beam's splitter cuts it
    (`query_splitter.get_splits`), as `(index, start, end)`: client keys,
    None for an open end. Fewer ranges if the kind has too few entities;
    one if the query cannot be split.

    Beam samples `KEYS_PER_SPLIT` (32) `__scatter__` keys per range, to
    balance them; `max_scatter_keys` caps that sample (see ReadKind: the
    emulator charges ~0.3 s of CPU per page of 300 scatter keys).
    """
    client = helper.get_client(query.project, query.namespace)
    try:
        if num_splits <= 1:
            raise query_splitter.SplitNotPossibleError(
                f'num_splits must be > 1, got: {num_splits}')
        query_splitter.validate_split(query)
        # Beam's words, which a run's log has always shown.
        _LOGGER.info('Splitting the query into %d splits', num_splits)
        split_keys = query_splitter._get_split_key(  # pylint: disable=protected-access
            _scatter_keys(client, query, num_splits, max_scatter_keys),
            num_splits)
    except query_splitter.QuerySplitterError:
        _LOGGER.info('Unable to split the query %s; reading it whole.', query,
                     exc_info=True)
        return [(0, None, None)]
    bounds = [None, *split_keys, None]
    return [(index, bounds[index], bounds[index + 1])
            for index in range(len(bounds) - 1)]


def _scatter_keys(client, query, num_splits: int,
                  max_keys: Optional[int]) -> list:
    """`query_splitter._get_scatter_keys`, with the sample capped."""
    scatter = query_splitter._create_scatter_query(query, num_splits)  # pylint: disable=protected-access
    if max_keys is not None:
        scatter.limit = max(num_splits - 1, min(scatter.limit, max_keys))
    client_query = scatter._to_client_query(client)  # pylint: disable=protected-access
    keys = [entity.key for entity in client_query.fetch(client=client,
                                                         limit=scatter.limit)]
    keys.sort(key=query_splitter.client_key_sort_key)
    return keys


def merge_adjacent(ranges: Sequence[tuple], queries: int) -> list[tuple]:
    """Ranges whose indexes follow each other, read in at most `queries`
    queries per run of adjacent ranges (as evenly as the ranges allow);
    ranges not next to each other stay apart."""
    runs: list[list[tuple]] = []
    for key_range in sorted(ranges, key=lambda r: r[0]):
        if runs and runs[-1][-1][0] + 1 == key_range[0]:
            runs[-1].append(key_range)
        else:
            runs.append([key_range])
    merged = []
    for run in runs:
        parts = min(len(run), max(1, queries))
        for part in range(parts):
            group = run[part * len(run) // parts:(part + 1) * len(run) // parts]
            merged.append((group[0][0], group[0][1], group[-1][2]))
    return merged


def range_query(query: beam_types.Query, start, end) -> beam_types.Query:
    """`query` restricted to the keys in [start, end)."""
    ranged = query.clone()
    filters = list(query.filters or ())
    if start is not None:
        filters.append((_KEY, '>=', start))
    if end is not None:
        filters.append((_KEY, '<', end))
    ranged.filters = filters
    return ranged


def _raw(unused_iterator, entity_pb):
    return entity_pb._pb  # pylint: disable=protected-access


def read_pages(query: beam_types.Query, client=None) -> Iterator[list]:
    """The pages of `query`, each a list of entity protobufs.

    The client library's own query iterator builds the requests, follows the
    cursors and retries; only its conversion of each entity is skipped.
    """
    if query.namespace is None:
        query = query.clone()
        query.namespace = ''
    client = client or helper.get_client(query.project, query.namespace)
    iterator = query._to_client_query(client).fetch()  # pylint: disable=protected-access
    iterator.item_to_value = _raw
    for page in iterator.pages:
        yield list(page)


class _Prefetch:
    """Pages of several queries, read on threads, handed out as they come.

    `READERS` threads take the queries in turn; a bounded queue holds at
    most `BUFFERED_PAGES` pages, so memory does not grow with the kind.
    Closing (or leaving the loop early) stops the threads at their next page.
    """

    _DONE = object()

    def __init__(self, queries: Sequence[beam_types.Query], readers: int,
                 buffered: int):
        self._todo: queue.Queue = queue.Queue()
        for query in queries:
            self._todo.put(query)
        self._pages: queue.Queue = queue.Queue(maxsize=max(1, buffered))
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._read, daemon=True,
                                          name=f'datastore-read-{n}')
                         for n in range(max(1, min(readers, len(queries))))]

    def __iter__(self) -> Iterator:
        for thread in self._threads:
            thread.start()
        running = len(self._threads)
        try:
            while running:
                page = self._pages.get()
                if page is self._DONE:
                    running -= 1
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

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._pages.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        client = None
        try:
            while not self._stop.is_set():
                try:
                    query = self._todo.get_nowait()
                except queue.Empty:
                    break
                if client is None:
                    client = helper.get_client(
                        query.project, query.namespace or '')
                for page in read_pages(query, client):
                    if not self._put(page):
                        return
        except BaseException as error:  # pylint: disable=broad-except
            self._put(error)
            return
        self._put(self._DONE)


class _ReadRangesFn(beam.DoFn):
    """A bundle's key ranges → their entities, prefetched on threads.

    The ranges are collected as they arrive and read when the bundle ends,
    when all of them are known: that is what lets the next range's first
    page be in flight while the last page of another is mapped.
    """

    def __init__(self, query: beam_types.Query, readers: int = READERS,
                 buffered: int = BUFFERED_PAGES):
        super().__init__()
        self._query = query
        self._readers = readers
        self._buffered = buffered

    def start_bundle(self):
        self._ranges = []

    def process(self, key_range):
        self._ranges.append(key_range)

    def finish_bundle(self):
        ranges, self._ranges = self._ranges, []
        if not ranges:
            return
        queries = [range_query(self._query, start, end) for _, start, end
                   in merge_adjacent(ranges, QUERIES_PER_RUN)]
        for entity_pb in _Prefetch(queries, self._readers, self._buffered):
            yield window.GlobalWindows.windowed_value(EntityPb(entity_pb))


class _SplitFn(beam.DoFn):

    def __init__(self, num_splits: int, max_scatter_keys: Optional[int]):
        super().__init__()
        self._num_splits = num_splits
        self._max_scatter_keys = max_scatter_keys

    def process(self, query):
        return split_ranges(query, self._num_splits, self._max_scatter_keys)


class ReadKeyRanges(beam.PTransform):
    """pbegin → every entity `query` matches, as entity protobufs.

    `query` is split into `num_splits` key ranges, as `ReadFromDatastore`
    splits it (sampling at most `max_scatter_keys` scatter keys, if given);
    see the module docstring for how they are read.
    """

    def __init__(self, query: beam_types.Query, num_splits: int,
                 max_scatter_keys: Optional[int] = None,
                 readers: int = READERS, buffered: Optional[int] = None):
        super().__init__()
        self._query = query
        self._num_splits = num_splits
        self._max_scatter_keys = max_scatter_keys
        self._readers = readers
        self._buffered = BUFFERED_PAGES if buffered is None else buffered

    def expand(self, pbegin):
        # Beam's own step names (ReadFromDatastore's), so a graph reads the
        # same to whoever knows Beam's.
        return (
            pbegin.pipeline
            | 'UserQuery' >> beam.Create([self._query])
            | 'SplitQuery' >> beam.ParDo(_SplitFn(
                self._num_splits, self._max_scatter_keys))
            | 'Reshuffle' >> beam.Reshuffle()
            | 'Read' >> beam.ParDo(_ReadRangesFn(
                self._query, self._readers, self._buffered))
        )
