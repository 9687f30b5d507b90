"""The Datastore read (io/datastore_read.py): Beam's key-range splits, every
entity of every kind once whatever the shard count, by one read; pages
prefetched on threads and bounded by bytes."""

import threading
import time

import pytest
from apache_beam.io.gcp.datastore.v1new import helper
from apache_beam.io.gcp.datastore.v1new import query_splitter
from apache_beam.io.gcp.datastore.v1new import types as beam_types
from google.cloud import ndb

from beam_jobs import entities as entities_lib
from beam_jobs import lean_models, testing
from beam_jobs import target as target_lib
from beam_jobs.io import datastore_read
from tests import export_helpers


class ReadNote(ndb.Model):
    n = ndb.IntegerProperty()


class OtherNote(ndb.Model):
    n = ndb.IntegerProperty()


class BigNote(ndb.Model):
    text = ndb.TextProperty()


COUNT = 700     # more than two of the emulator's 300-entity pages


@pytest.fixture
def notes(datastore_target):
    with testing.ndb_context(datastore_target):
        models = [ReadNote(id=f'note-{i:04d}', n=i) for i in range(COUNT)]
        models += [ReadNote(id=i, n=-i) for i in range(1, 31)]    # integer ids
        ndb.put_multi(models)
        ndb.put_multi([OtherNote(id=f'other-{i}', n=i) for i in range(20)])
    return models


def _query(target, kind='ReadNote'):
    return datastore_read.KindQuery(kind, target.project, target.namespace)


def _paths(read) -> list:
    return sorted(entities_lib.key_path(entity.key) for entity in read)


@pytest.mark.parametrize('shards', [1, 2, 7, 64])
def test_every_entity_once_whatever_the_shard_count(datastore_target, notes,
                                                    tmp_path, shards):
    read = export_helpers.collect(
        datastore_read.ReadKinds(['ReadNote'], datastore_target, shards), tmp_path)
    assert all(isinstance(entity, lean_models.EntityPb) for entity in read)
    assert _paths(read) == sorted(entities_lib.key_path(model.key) for model in notes)


def test_several_kinds_are_read_by_one_read(datastore_target, notes, tmp_path):
    read = export_helpers.collect(
        datastore_read.ReadKinds(['ReadNote', 'OtherNote'], datastore_target, 4),
        tmp_path)
    assert _paths(read) == sorted(
        [entities_lib.key_path(model.key) for model in notes]
        + [f'OtherNote/other-{i}' for i in range(20)])


def test_ranges_are_beams_splits(datastore_target, notes):
    """The splitting helpers are beam-jobs' own copy of Beam's splitter's
    (whose are internal): same sample, same split points."""
    beam_query = beam_types.Query(kind='ReadNote', project=datastore_target.project,
                                  namespace=datastore_target.namespace)
    client = helper.get_client(beam_query.project, beam_query.namespace)
    beams = query_splitter.get_splits(client, beam_query, 8)
    ranges = datastore_read.split_ranges(_query(datastore_target), 8)
    assert len(ranges) == len(beams) == 8
    for key_range, split in zip(ranges, beams):
        filters = {op: value for _, op, value in split.filters}
        assert (key_range.start, key_range.end) == (filters.get('>='), filters.get('<'))
    assert ranges[0].start is None and ranges[-1].end is None
    assert all(ranges[i].end == ranges[i + 1].start for i in range(7))


def test_a_capped_scatter_sample_still_gives_the_shard_count(datastore_target, notes):
    ranges = datastore_read.split_ranges(_query(datastore_target), 64,
                                         max_scatter_keys=300)
    assert len(ranges) == 64
    assert [key_range.index for key_range in ranges] == list(range(64))
    assert all(ranges[i].end == ranges[i + 1].start for i in range(63))


def test_one_shard_or_a_small_kind_is_read_whole(datastore_target, notes):
    query = _query(datastore_target)
    assert datastore_read.split_ranges(query, 1) == [datastore_read.KeyRange(query, 0)]
    # 20 entities cannot make 64 ranges: fewer, covering the whole kind.
    ranges = datastore_read.split_ranges(_query(datastore_target, 'OtherNote'), 64)
    assert 1 <= len(ranges) <= 21
    assert ranges[0].start is None and ranges[-1].end is None


def test_adjacent_ranges_merge_into_fewer_queries():
    query = datastore_read.KindQuery('K', 'p')
    other = datastore_read.KindQuery('L', 'p')

    def key_range(index, start, end, of=query):
        return datastore_read.KeyRange(of, index, start, end)
    ranges = [key_range(i, f'k{i}', f'k{i + 1}') for i in range(64)]
    merged = datastore_read.merge_adjacent(ranges, 16)
    assert len(merged) == 16
    assert merged[0] == key_range(0, 'k0', 'k4') and merged[-1] == key_range(60, 'k60', 'k64')
    assert all(merged[i].end == merged[i + 1].start for i in range(15))
    # Ranges a bundle holds apart stay apart; fewer than the cap stay as they
    # are; ranges of two kinds never merge.
    apart = [key_range(0, None, 'k1'), key_range(1, 'k1', 'k2'),
             key_range(5, 'k5', 'k6'), key_range(3, 'k3', 'k4')]
    assert datastore_read.merge_adjacent(apart, 1) == [
        key_range(0, None, 'k2'), key_range(3, 'k3', 'k4'), key_range(5, 'k5', 'k6')]
    assert datastore_read.merge_adjacent(apart, 16) == sorted(apart, key=lambda r: r.index)
    two_kinds = [key_range(0, None, 'k1'), key_range(1, 'k1', None, of=other)]
    assert len(datastore_read.merge_adjacent(two_kinds, 1)) == 2


def test_pages_of_several_ranges_all_arrive(datastore_target, notes):
    ranges = datastore_read.split_ranges(_query(datastore_target), 5)
    ranges += datastore_read.split_ranges(_query(datastore_target, 'OtherNote'), 2)
    read = list(datastore_read._Prefetch(ranges, readers=2, buffered=1))
    assert len(read) == len(notes) + 20
    assert len({tuple(lean_models.flat_path_of(pb.key)) for pb in read}) == len(notes) + 20


def test_pages_are_bounded_by_bytes(datastore_target):
    """The emulator sends up to ~300 entities a page whatever their size;
    once a page is too large the rest of the range comes in pages that fit."""
    with testing.ndb_context(datastore_target):
        for start in range(0, 400, 100):   # the emulator takes 4 MiB a request
            ndb.put_multi([BigNote(id=f'big-{i:03d}', text='x' * 10_000)
                           for i in range(start, start + 100)])
    client = target_lib.client(datastore_target)
    key_range = datastore_read.KeyRange(_query(datastore_target, 'BigNote'), 0)
    pages = list(datastore_read.read_pages(client, key_range, max_page_bytes=300_000))
    assert sum(len(page) for page in pages) == 400
    assert len({lean_models.flat_path_of(pb.key)[1] for page in pages for pb in page}) == 400
    # The first page shows the size (hundreds of entities); every later one
    # fits in the bound (~30 entities of 10 KB).
    assert len(pages[0]) > 100
    assert all(len(page) <= 30 for page in pages[1:]) and len(pages) >= 4


def test_entities_too_large_for_grpcs_default_cap_are_read(datastore_target, tmp_path):
    """A page of 30 KB entities is ~9 MB, over gRPC's default 4 MiB: the
    emulator's channel has no cap, as production's has none."""
    with testing.ndb_context(datastore_target):
        for start in range(0, 400, 50):
            ndb.put_multi([BigNote(id=f'wide-{i:03d}', text='y' * 30_000)
                           for i in range(start, start + 50)])
    read = export_helpers.collect(
        datastore_read.ReadKinds(['BigNote'], datastore_target, 2), tmp_path)
    assert len(read) == 400


def test_a_reader_s_failure_reaches_the_pipeline(datastore_target, monkeypatch):
    def failing(client, key_range, **unused_options):
        yield [lean_models.ENTITY_PB()]
        raise RuntimeError('the Datastore went away')
    monkeypatch.setattr(datastore_read, 'read_pages', failing)
    key_range = datastore_read.KeyRange(_query(datastore_target), 0)
    with pytest.raises(RuntimeError, match='went away'):
        list(datastore_read._Prefetch([key_range, key_range], readers=2, buffered=1))


def test_leaving_early_stops_the_readers(datastore_target, monkeypatch):
    started = threading.Event()

    def endless(client, key_range, **unused_options):
        started.set()
        while True:
            yield [lean_models.ENTITY_PB()]
    monkeypatch.setattr(datastore_read, 'read_pages', endless)
    before = threading.active_count()
    key_range = datastore_read.KeyRange(_query(datastore_target), 0)
    prefetch = datastore_read._Prefetch([key_range] * 3, readers=2, buffered=2)
    for count, _ in enumerate(prefetch):
        if count == 5:
            break
    assert started.is_set()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before


def test_entity_protobufs_travel_as_bytes():
    import pickle
    entity = lean_models.ENTITY_PB()
    entity.key.path.add(kind='A', name='x')
    entity.properties['n'].integer_value = 3
    wrapped = lean_models.EntityPb(entity)
    assert pickle.loads(pickle.dumps(wrapped)) == wrapped
    assert entities_lib.kind_of_entity(wrapped) == 'A'
    assert entities_lib.key_path(wrapped.key) == 'A/x'
