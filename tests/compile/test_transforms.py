"""The compile path in memory: TestPipeline + assert_that, no Datastore."""

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs import MapReduce, jobs, testing
from beam_jobs.compile.steps import JobItemError
from beam_jobs.output_format import output_line
from tests import job_fixtures as fx

PROJECT = 'beam-jobs-unit'


def _notes(*texts, topic='math'):
    from beam_jobs import target as target_lib
    with testing.ndb_context(target_lib.Target(PROJECT)):
        return [fx.NoteModel(id='n%d' % i, text=text, topic=topic)
                for i, text in enumerate(texts)]


def _run(job, models, expected, params=None):
    with testing.local_test_pipeline() as pipeline:
        lines = (pipeline | beam.Create(models)
                 | MapReduce(job, params, project=PROJECT))
        assert_that(lines, equal_to(expected))


def test_aggregate_output():
    from beam_jobs import target as target_lib
    with testing.ndb_context(target_lib.Target(PROJECT)):
        models = fx.notes(7, deleted_every=3)
    # note 0, 3, 6 are deleted; of 1, 2, 4, 5: topics art, music, art, music
    _run(fx.TopicCountJob, models, ["['art', 2]", "['music', 2]"])


def test_legacy_str_shuffle():
    _run(fx.LegacyShuffleJob, _notes('ab', 'cde'),
         ["{'key': '1', 'key_type': 'str', 'value_types': ['str'], 'total_len': 5}"])


def test_output_line_is_json_round_trip_then_str():
    assert output_line(('k', ['a', 'b'])) == "['k', ['a', 'b']]"
    assert output_line('plain') == 'plain'
    assert output_line({'a': (1, 2)}) == "{'a': [1, 2]}"
    assert output_line(3) == '3'


def test_params_reach_map():
    models = _notes('a', 'b') + _notes('c', topic='art')
    _run(fx.ParamJob, models, ["['match', ['n0']]"], params={'topic': 'art'})


def test_missing_param_is_an_error_line_naming_it():
    with testing.local_test_pipeline() as pipeline:
        lines = (pipeline | beam.Create(_notes('a'))
                 | MapReduce(fx.ParamJob, {}, project=PROJECT))
        assert_that(lines, lambda got: _check_single_error(
            got, ["NoteModel/n0", "No job parameter 'topic'"]))


def _check_single_error(got, fragments):
    assert len(got) == 1, got
    assert got[0].startswith('ERROR in map for '), got
    for fragment in fragments:
        assert fragment in got[0], (fragment, got)


def test_one_failing_entity_does_not_stop_the_job():
    models = _notes('fine', 'bad', 'fine too', 'shape', 'unprintable')

    def check(got):
        errors = sorted(line for line in got if line.startswith('ERROR'))
        assert [line for line in got if not line.startswith('ERROR')] == ["['ok', 2]"]
        assert len(errors) == 3, errors
        assert 'NoteModel/n1: ValueError: cannot migrate note n1' in errors[0]
        assert 'NoteModel/n3: TypeError: map must yield (key, value) 2-tuples' in errors[1]
        assert 'NoteModel/n4: RuntimeError: no text form' in errors[2]
    with testing.local_test_pipeline() as pipeline:
        assert_that(pipeline | beam.Create(models)
                    | MapReduce(fx.FailingMapJob, project=PROJECT), check)


def test_reduce_failure_names_the_key():
    class BoomJob(fx.FailingMapJob):
        @staticmethod
        def map(item):
            yield ('boom', 1)
            yield ('fine', 1)

    def check(got):
        assert "['fine', 1]" in got
        [error] = [line for line in got if line.startswith('ERROR')]
        assert error.startswith("ERROR in reduce for key 'boom': KeyError: 'boom'")
    with testing.local_test_pipeline() as pipeline:
        assert_that(pipeline | beam.Create(_notes('x'))
                    | MapReduce(BoomJob, project=PROJECT), check)


def test_fail_fast_stops_the_pipeline():
    with pytest.raises(Exception, match='cannot migrate note n1'):
        _run(fx.FailFastJob, _notes('fine', 'bad'), [])


def test_fail_fast_as_a_param():
    with pytest.raises(Exception, match='cannot migrate note n0'):
        _run(fx.FailingMapJob, _notes('bad'), [], params={'fail_fast': True})


def test_writes_are_summarised_never_applied_in_mapreduce():
    from beam_jobs import target as target_lib
    with testing.ndb_context(target_lib.Target(PROJECT)):
        models = fx.notes(4, deleted_every=2)
    _run(fx.TopicTagMigrationJob, models, [
        "['TAGGED', 2]", "['DELETED', 2]",
        'DRY RUN: would put 2 TagModel (nothing was written)',
        'DRY RUN: would delete 2 NoteModel (nothing was written)'])


class _NoMap(jobs.BaseMapReduceOneOffJobManager):
    @classmethod
    def entity_classes_to_map_over(cls):
        return [fx.NoteModel]

    @staticmethod
    def reduce(key, values):
        yield key


class _NoReduce(jobs.BaseMapReduceOneOffJobManager):
    @classmethod
    def entity_classes_to_map_over(cls):
        return [fx.NoteModel]

    @staticmethod
    def map(item):
        yield (1, 1)


class _NoClasses(jobs.BaseMapReduceOneOffJobManager):
    map = staticmethod(lambda item: iter(()))
    reduce = staticmethod(lambda key, values: iter(()))


class _NotAModel(_NoClasses):
    @classmethod
    def entity_classes_to_map_over(cls):
        return [dict]


class _EmptyClasses(_NoClasses):
    @classmethod
    def entity_classes_to_map_over(cls):
        return []


class _ModelNotInList(_NoClasses):
    @classmethod
    def entity_classes_to_map_over(cls):
        return fx.NoteModel


@pytest.mark.parametrize('job, message', [
    (_NoMap, '_NoMap has no map: define a @staticmethod map(item)'),
    (_NoReduce, '_NoReduce has no reduce: define a @staticmethod reduce'),
    (_NoClasses, '_NoClasses has no entity_classes_to_map_over'),
    (_NotAModel, "returned <class 'dict'>, which is not a google.cloud.ndb model class"),
    (_EmptyClasses, 'returned an empty list'),
    (_ModelNotInList, 'return a list of ndb model classes'),
    (fx.TopicCountJob(), 'is not a job class'),
])
def test_refused_job_classes(job, message):
    with pytest.raises(jobs.InvalidJobError, match=message.replace('(', r'\(')
                       .replace(')', r'\)').replace('[', r'\[')):
        MapReduce(job)


def test_fail_fast_error_type():
    assert issubclass(JobItemError, RuntimeError)
