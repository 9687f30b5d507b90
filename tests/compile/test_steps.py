"""The optional `combine(key, values)` step: same output, smaller shuffle."""

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from google.cloud import ndb

from beam_jobs import MapReduce, RunJob, jobs, testing
from beam_jobs import target as target_lib
from beam_jobs import job_class as job_class_lib

PROJECT = 'beam-jobs-unit'


class WordModel(ndb.Model):
    topic = ndb.StringProperty()


class TopicCountJob(jobs.BaseMapReduceOneOffJobManager):
    """Count-like: the shape combiners are for."""

    @classmethod
    def entity_classes_to_map_over(cls):
        return [WordModel]

    @staticmethod
    def map(item):
        yield (item.topic, 1)

    @staticmethod
    def reduce(key, values):
        yield (key, sum(int(value) for value in values))


class CombinedTopicCountJob(TopicCountJob):

    @staticmethod
    def combine(key, values):
        yield sum(int(value) for value in values)


class ShuffleWitnessJob(CombinedTopicCountJob):
    """Reports what reduce received, to show combine ran before it."""

    @staticmethod
    def reduce(key, values):
        assert all(isinstance(value, str) for value in values), values
        # Without combine reduce would get 1,000 values per key.
        yield (key, sum(int(value) for value in values), len(values) < 100)


class KeyedCombineJob(TopicCountJob):
    """combine sees the key and may yield several values."""

    @staticmethod
    def combine(key, values):
        assert isinstance(key, str) and all(isinstance(v, str) for v in values)
        total = sum(int(value) for value in values)
        yield f'{total}'
        yield '0'

    @staticmethod
    def reduce(key, values):
        yield (key, sum(int(value) for value in values))


class MethodCombineJob(TopicCountJob):

    def combine(self, key, values):  # not a staticmethod: refused
        yield from values


class NotCallableCombineJob(TopicCountJob):
    combine = 3


def _words(count, topics=('art', 'math', 'music')):
    with testing.ndb_context(target_lib.Target(PROJECT)):
        return [WordModel(id=f'w{i}', topic=topics[i % len(topics)])
                for i in range(count)]


def _run(job, models, expected):
    with testing.local_test_pipeline() as pipeline:
        lines = (pipeline | beam.Create(models)
                 | MapReduce(job, project=PROJECT))
        assert_that(lines, equal_to(expected))


def test_combine_gives_the_same_output_as_without():
    expected = ["['art', 34]", "['math', 33]", "['music', 33]"]
    models = _words(100)
    _run(TopicCountJob, models, expected)
    _run(CombinedTopicCountJob, models, expected)


def test_combine_runs_before_reduce_with_str_values():
    _run(ShuffleWitnessJob, _words(3000),
         ["['art', 1000, True]", "['math', 1000, True]",
          "['music', 1000, True]"])


def test_combine_gets_the_key_and_may_yield_several_values():
    _run(KeyedCombineJob, _words(30), ["['art', 10]", "['math', 10]",
                                       "['music', 10]"])


def test_combine_failure_names_the_key():
    class BrokenCombineJob(TopicCountJob):
        @staticmethod
        def combine(key, values):
            raise ValueError('no')
            yield  # pylint: disable=unreachable

    with pytest.raises(Exception, match=r"combine for key 'art'.*ValueError: no"):
        _run(BrokenCombineJob, _words(60), [])


@pytest.mark.parametrize('job', [MethodCombineJob, NotCallableCombineJob])
def test_a_combine_that_cannot_be_called_is_refused(job):
    with pytest.raises(job_class_lib.InvalidJobError, match='combine'):
        MapReduce(job, project=PROJECT)


def test_jobs_without_combine_have_none():
    assert not job_class_lib.has_combine(TopicCountJob)
    assert job_class_lib.has_combine(CombinedTopicCountJob)


def test_combine_against_the_datastore(datastore_target):
    with testing.ndb_context(datastore_target):
        models = [WordModel(id=f'w{i}', topic='art' if i % 4 else 'math')
                  for i in range(40)]
    testing.put_models(datastore_target, models)
    with testing.local_test_pipeline() as pipeline:
        lines = pipeline | RunJob(CombinedTopicCountJob,
                                  project=datastore_target.project,
                                  namespace=datastore_target.namespace)
        assert_that(lines, equal_to(["['art', 30]", "['math', 10]"]))
