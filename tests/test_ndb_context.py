"""ndb_context.py: the ndb context the map step keeps current
(`NdbContext.run`): one per run, its cache cleared after each element, none
left current after a run, and a context already current used, not replaced."""

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from google.cloud import ndb

from beam_jobs import MapReduce, jobs, ndb_context, testing
from tests.job_fixtures import NoteModel


class ContextJob(jobs.BaseMapReduceOneOffJobManager):
    """Reports what map sees of its ndb context, and leaves entities in its
    cache: the next element must not see them."""

    @classmethod
    def entity_classes_to_map_over(cls):
        return [NoteModel]

    @staticmethod
    def map(item):
        context = ndb.get_context()
        cached = len(context.cache)
        context.cache[ndb.Key('NoteModel', 'x')] = item
        yield ('cache', str(cached))
        yield ('context', type(context).__name__)
        yield ('param', jobs.BaseMapReduceOneOffJobManager.get_mapper_param('p'))

    @staticmethod
    def reduce(key, values):
        yield (key, sorted(set(values)))


def test_map_has_a_context_and_params_and_a_clean_cache(datastore_target):
    with testing.ndb_context(datastore_target):
        notes = [NoteModel(id=f'n{i}', text=str(i)) for i in range(150)]
    with testing.local_test_pipeline() as pipeline:
        lines = (pipeline | beam.Create(notes)
                 | MapReduce(ContextJob, {'p': 'v'}, project=datastore_target.project))
        assert_that(lines, equal_to(["['cache', ['0']]", "['context', ['Context']]",
                                     "['param', ['v']]"]))


def test_no_context_is_left_current_after_a_run(datastore_target):
    context = ndb_context.NdbContext(datastore_target)
    seen = []

    def work(value):
        seen.append(ndb.get_context(raise_context_error=False) is not None)
        ndb.get_context().cache[ndb.Key('K', value)] = value
        context.after_each()
        seen.append(len(ndb.get_context().cache))
        return value * 2
    assert context.run(work, 3) == 6
    assert seen == [True, 0]
    assert ndb.get_context(raise_context_error=False) is None
    with pytest.raises(ZeroDivisionError):
        context.run(lambda: 1 / 0)
    assert ndb.get_context(raise_context_error=False) is None
    assert context.run(work, 1) == 2        # a fresh context after a failure


def test_a_current_context_is_used_not_replaced(datastore_target):
    with testing.ndb_context(datastore_target):
        outer = ndb.get_context()
        outer.cache[ndb.Key('K', 1)] = 'kept'
        inner = ndb_context.NdbContext(datastore_target)
        assert inner.run(ndb.get_context) is outer
        inner.run(inner.after_each)
        assert outer.cache[ndb.Key('K', 1)] == 'kept'
        with inner.active():
            assert ndb.get_context() is outer
