"""The Datastore read (datastore_read.py): Beam's key-range splits, every
entity once whatever the shard count, pages prefetched on threads."""

import threading
import time

import pytest
from apache_beam.io.gcp.datastore.v1new import helper
from apache_beam.io.gcp.datastore.v1new import query_splitter
from apache_beam.io.gcp.datastore.v1new import types as beam_types
from google.cloud import ndb

from beam_jobs import datastore, datastore_read, lean_models, testing
from tests import export_helpers


class ReadNote(ndb.Model):
    n = ndb.IntegerProperty()


class OtherNote(ndb.Model):
    n = ndb.IntegerProperty()


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
    return beam_types.Query(kind=kind, project=target.project,
                            namespace=target.namespace)


@pytest.mark.parametrize('shards', [1, 2, 7, 64])
def test_every_entity_once_whatever_the_shard_count(datastore_target, notes,
                                                    tmp_path, shards):
    read = export_helpers.collect(
        datastore.ReadKind(ReadNote, datastore_target, shards), tmp_path)
    assert all(isinstance(entity, lean_models.EntityPb) for entity in read)
    assert sorted(datastore.key_path(entity.key) for entity in read) == sorted(
        datastore.key_path(model.key) for model in notes)


def test_ranges_are_beams_splits(datastore_target, notes):
    query = _query(datastore_target)
    client = helper.get_client(query.project, query.namespace)
    beams = query_splitter.get_splits(client, query, 8)
    ranges = datastore_read.split_ranges(query, 8)
    assert len(ranges) == len(beams) == 8
    for (index, start, end), split in zip(ranges, beams):
        filters = {op: value for _, op, value in split.filters}
        assert (start, end) == (filters.get('>='), filters.get('<')), index
    assert ranges[0][1] is None and ranges[-1][2] is None
    assert all(ranges[i][2] == ranges[i + 1][1] for i in range(7))


def test_a_capped_scatter_sample_still_gives_the_shard_count(datastore_target, notes):
    ranges = datastore_read.split_ranges(_query(datastore_target), 64,
                                         max_scatter_keys=300)
    assert len(ranges) == 64
    assert [index for index, _, _ in ranges] == list(range(64))
    assert all(ranges[i][2] == ranges[i + 1][1] for i in range(63))


def test_a_query_that_cannot_be_split_is_read_whole(datastore_target, notes):
    assert datastore_read.split_ranges(_query(datastore_target), 1) == [(0, None, None)]
    limited = _query(datastore_target)
    limited.limit = 5
    assert datastore_read.split_ranges(limited, 8) == [(0, None, None)]


def test_adjacent_ranges_merge_into_fewer_queries():
    ranges = [(i, f'k{i}', f'k{i + 1}') for i in range(64)]
    merged = datastore_read.merge_adjacent(ranges, 16)
    assert len(merged) == 16
    assert merged[0] == (0, 'k0', 'k4') and merged[-1] == (60, 'k60', 'k64')
    assert all(merged[i][2] == merged[i + 1][1] for i in range(15))
    # Ranges a bundle holds apart stay apart; fewer than the cap stay as they are.
    apart = [(0, None, 'k1'), (1, 'k1', 'k2'), (5, 'k5', 'k6'), (3, 'k3', 'k4')]
    assert datastore_read.merge_adjacent(apart, 1) == [
        (0, None, 'k2'), (3, 'k3', 'k4'), (5, 'k5', 'k6')]
    assert datastore_read.merge_adjacent(apart, 16) == sorted(apart)


def test_pages_of_several_queries_all_arrive(datastore_target, notes):
    query = _query(datastore_target)
    ranges = datastore_read.split_ranges(query, 5)
    queries = [datastore_read.range_query(query, start, end)
               for _, start, end in ranges]
    read = list(datastore_read._Prefetch(queries, readers=2, buffered=1))
    assert len(read) == len(notes)
    assert len({lean_models.flat_path_of(pb.key)[1] for pb in read}) == len(notes)


def test_a_reader_s_failure_reaches_the_pipeline(datastore_target, monkeypatch):
    def failing(query, client=None):
        yield [lean_models.ENTITY_PB()]
        raise RuntimeError('the Datastore went away')
    monkeypatch.setattr(datastore_read, 'read_pages', failing)
    query = _query(datastore_target)
    with pytest.raises(RuntimeError, match='went away'):
        list(datastore_read._Prefetch([query, query], readers=2, buffered=1))


def test_leaving_early_stops_the_readers(datastore_target, monkeypatch):
    started = threading.Event()

    def endless(query, client=None):
        started.set()
        while True:
            yield [lean_models.ENTITY_PB()]
    monkeypatch.setattr(datastore_read, 'read_pages', endless)
    before = threading.active_count()
    prefetch = datastore_read._Prefetch([_query(datastore_target)] * 3,
                                        readers=2, buffered=2)
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
    assert datastore.kind_of_entity(wrapped) == 'A'
    assert datastore.key_path(wrapped.key) == 'A/x'
