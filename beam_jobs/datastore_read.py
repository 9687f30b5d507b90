"""Reading a kind in key ranges, with the next page always in flight.

Beam's `ReadFromDatastore` splits a query into key ranges (`query_splitter`,
over `__scatter__`), spreads them over workers (`Reshuffle`) and reads each
range one page after another, turning every entity into a client entity and
then a Beam entity. Locally that left the two halves of a run taking turns:
the emulator's JVM answered a page while Python waited, then Python decoded
and mapped it while the JVM waited (bench/README.md has the profile). Here:

- splitting is Beam's own: `shard_count` key ranges, spread the same way;
- a worker reads all the ranges of its bundle on `READERS` threads, each
  fetching its pages while the worker maps the pages already fetched (gRPC
  releases the GIL while it waits), at most `BUFFERED_PAGES` pages ahead;
- ranges next to each other in a bundle are read as one range (the same
  entities, fewer queries: the emulator charges every query page about the
  same CPU, whatever it holds);
- entities leave as the raw protobufs the Datastore sent (`ENTITY_PB`): the
  map step builds models from them (lean_models.py), so an entity that fails
  to decode is reported there, by key, and never fails the read.
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

from beam_jobs.lean_models import ENTITY_PB

_LOGGER = logging.getLogger(__name__)

# Two threads keep the JVM busy on both cores while Python maps what
# arrived; more only queue up behind it (bench/README.md).
READERS = 2
BUFFERED_PAGES = 4
_KEY = query_splitter.KEY_PROPERTY_NAME


def split_ranges(query: beam_types.Query, num_splits: int) -> list[tuple]:
    """`query` cut into `num_splits` key ranges by Beam's splitter, as
    `(index, start, end)`: client keys, None for an open end."""
    client = helper.get_client(query.project, query.namespace)
    try:
        query_splitter.validate_split(query)
        splits = query_splitter.get_splits(client, query, num_splits)
    except query_splitter.QuerySplitterError:
        _LOGGER.info('Unable to split the query %s; reading it whole.', query,
                     exc_info=True)
        return [(0, None, None)]
    own = len(query.filters or ())
    ranges = []
    for index, split in enumerate(splits):
        start = end = None
        for name, op, value in list(split.filters or ())[own:]:
            if name == _KEY and op == '>=':
                start = value
            elif name == _KEY and op == '<':
                end = value
        ranges.append((index, start, end))
    return ranges


def merge_adjacent(ranges: Sequence[tuple], groups: int) -> list[tuple]:
    """Ranges whose indexes follow each other, read as one range.

    A run of adjacent ranges is cut into at most `groups` parts, so that many
    readers still have a range each; ranges not next to each other stay
    apart.
    """
    runs: list[list[tuple]] = []
    for key_range in sorted(ranges, key=lambda r: r[0]):
        if runs and runs[-1][-1][0] + 1 == key_range[0]:
            runs[-1].append(key_range)
        else:
            runs.append([key_range])
    while len(runs) < groups and any(len(run) > 1 for run in runs):
        longest = max(range(len(runs)), key=lambda i: len(runs[i]))
        run = runs.pop(longest)
        half = len(run) // 2
        runs[longest:longest] = [run[:half], run[half:]]
    return [(run[0][0], run[0][1], run[-1][2]) for run in runs]


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
                   in merge_adjacent(ranges, self._readers)]
        for entity_pb in _Prefetch(queries, self._readers, self._buffered):
            yield window.GlobalWindows.windowed_value(entity_pb)


class _SplitFn(beam.DoFn):

    def __init__(self, num_splits: int):
        super().__init__()
        self._num_splits = num_splits

    def process(self, query):
        return split_ranges(query, self._num_splits)


class ReadKeyRanges(beam.PTransform):
    """pbegin → every entity `query` matches, as entity protobufs.

    `query` is split into `num_splits` key ranges, as `ReadFromDatastore`
    splits it; see the module docstring for how they are read.
    """

    def __init__(self, query: beam_types.Query, num_splits: int,
                 readers: int = READERS, buffered: Optional[int] = None):
        super().__init__()
        self._query = query
        self._num_splits = num_splits
        self._readers = readers
        self._buffered = BUFFERED_PAGES if buffered is None else buffered

    def expand(self, pbegin):
        return (
            pbegin.pipeline
            | 'Query' >> beam.Create([self._query])
            | 'Split into key ranges' >> beam.ParDo(_SplitFn(self._num_splits))
            | 'Spread ranges' >> beam.Reshuffle()
            | 'Read ranges' >> beam.ParDo(_ReadRangesFn(
                self._query, self._readers, self._buffered)).with_output_types(
                    ENTITY_PB)
        )
