"""The legacy job API end to end, on the emulator (a namespace per test)."""

import ast

import pytest

from beam_jobs import jobs, testing
from pipelines import exp_jobs_one_off, sample_data
from tests import job_fixtures as fx


def _run(job, params=None, shard_count=8):
    job_id = job.create_new()
    assert job.get_status_code(job_id) == jobs.STATUS_CODE_NEW
    job.enqueue(job_id, additional_job_params=params, shard_count=shard_count)
    assert job.get_status_code(job_id) == jobs.STATUS_CODE_COMPLETED, job.get_error(job_id)
    return job_id


def test_interaction_audit_job(datastore_target):
    with testing.ndb_context(datastore_target):
        models = list(sample_data.explorations(60))
    testing.put_models(datastore_target, models)
    expected = {}
    for model in models:
        if model.deleted:
            continue
        for name, state in model.states.items():
            expected.setdefault(state['interaction']['id'], []).append(
                '%s %s' % (model.key.id(), name))

    job = exp_jobs_one_off.InteractionAuditOneOffJob
    job_id = job.create_new()
    job.enqueue(job_id)  # the job's own override: shard_count=64
    assert job.get_status_code(job_id) == 'completed', job.get_error(job_id)
    got = {}
    for line in job.get_output(job_id):
        interaction_id, keys = ast.literal_eval(line)
        got[interaction_id] = sorted(keys)
    assert got == {k: sorted(v) for k, v in expected.items()}
    record = job.get_record(job_id)
    assert record.shard_count == 64
    assert record.counters['entities_read.ExplorationModel'] == 60
    assert record.counters['map_calls'] == 60
    assert record.output_line_count == len(expected)


def test_two_kinds(datastore_target):
    with testing.ndb_context(datastore_target):
        testing.put_models(datastore_target, fx.notes(3) + [
            fx.TagModel(id='t1', name='a'), fx.TagModel(id='t2', name='b')])
    job_id = _run(fx.TwoKindsJob)
    assert sorted(fx.TwoKindsJob.get_output(job_id)) == [
        'NoteModel: note-000,note-001,note-002', 'TagModel: t1,t2']
    counters = fx.TwoKindsJob.get_record(job_id).counters
    assert counters['entities_read.NoteModel'] == 3
    assert counters['entities_read.TagModel'] == 2


def test_additional_job_params(datastore_target):
    with testing.ndb_context(datastore_target):
        testing.put_models(datastore_target, fx.notes(6))
    job_id = _run(fx.ParamJob, params={'topic': 'art'})
    assert fx.ParamJob.get_output(job_id) == ["['match', ['note-001', 'note-004']]"]
    assert fx.ParamJob.get_record(job_id).params == {'topic': 'art'}


def test_empty_datastore(datastore_target):
    job_id = _run(fx.TopicCountJob)
    assert fx.TopicCountJob.get_output(job_id) == []
    record = fx.TopicCountJob.get_record(job_id)
    assert record.output_line_count == 0 and record.error_count == 0


def test_legacy_str_shuffle(datastore_target):
    with testing.ndb_context(datastore_target):
        testing.put_models(datastore_target, fx.notes(2))
    job_id = _run(fx.LegacyShuffleJob)
    [line] = fx.LegacyShuffleJob.get_output(job_id)
    assert ast.literal_eval(line) == {
        'key': '1', 'key_type': 'str', 'value_types': ['str'], 'total_len': 12}


def test_output_format(datastore_target):
    with testing.ndb_context(datastore_target):
        testing.put_models(datastore_target, [fx.TagModel(id='t', name='v')])
    job_id = _run(fx.OutputFormatJob)
    assert fx.OutputFormatJob.get_output(job_id) == [
        "['k', ['v']]", 'plain string', "{'a': [1, 2]}", '3', '(2x) same']


def test_shard_count_is_the_read_splits(datastore_target):
    with testing.ndb_context(datastore_target):
        testing.put_models(datastore_target, fx.notes(30))
    job_id = _run(fx.TopicCountJob, shard_count=3)
    assert sorted(fx.TopicCountJob.get_output(job_id)) == [
        "['art', 10]", "['math', 10]", "['music', 10]"]
    assert fx.TopicCountJob.get_record(job_id).shard_count == 3


def test_job_counters(datastore_target):
    with testing.ndb_context(datastore_target):
        testing.put_models(datastore_target, fx.notes(4))
    job_id = _run(fx.CounterJob)
    counters = fx.CounterJob.get_record(job_id).counters
    assert counters['CounterJob.notes_seen'] == 4
    assert counters['pairs_emitted'] == 4
    assert counters['keys_reduced'] == 1
    assert counters['output_lines'] == 1
    assert counters['errors'] == 0


@pytest.mark.parametrize('job', [
    'NoMapJob', 'NotAModelJob'])
def test_refused_job_classes_never_start(datastore_target, job):
    class NoMapJob(jobs.BaseMapReduceOneOffJobManager):
        @classmethod
        def entity_classes_to_map_over(cls):
            return [fx.NoteModel]

        @staticmethod
        def reduce(key, values):
            yield key

    class NotAModelJob(fx.TopicCountJob):
        @classmethod
        def entity_classes_to_map_over(cls):
            return ['NoteModel']
    job_class = {'NoMapJob': NoMapJob, 'NotAModelJob': NotAModelJob}[job]
    with pytest.raises(jobs.InvalidJobError):
        job_class.create_new()
    job_id = fx.TopicCountJob.create_new()
    with pytest.raises(jobs.InvalidJobError):
        job_class.enqueue(job_id)
    assert fx.TopicCountJob.get_status_code(job_id) == 'new'


MULTI_PROCESSING = ['--direct_running_mode=multi_processing', '--direct_num_workers=2']


def test_jobs_run_as_dataflow_workers_run_them(datastore_target):
    """Job code, params and models pickled into separate worker processes
    give the same output as the in-memory runner, and the writes land."""
    from beam_jobs.lifecycle import launcher
    sample_data.load(60, datastore_target)
    audit = exp_jobs_one_off.InteractionAuditOneOffJob
    migration = exp_jobs_one_off.ExplorationContentMigrationOneOffJob
    store_output = lambda record: audit.get_output(record.run_id)  # noqa: E731

    def grouped(record):
        # The order of a key's values is the runner's, as it was in
        # App Engine MapReduce: compare each key's values as a set.
        return sorted((key, sorted(values)) for key, values in
                      map(ast.literal_eval, store_output(record)))

    in_memory = launcher.run_job(audit, target=datastore_target)
    workers = launcher.run_job(audit, target=datastore_target,
                               pipeline_args=MULTI_PROCESSING)
    assert workers.status == 'completed', workers.error
    assert grouped(workers) == grouped(in_memory)
    assert workers.counters == in_memory.counters

    dry = launcher.run_job(migration, params={'dry_run': True}, target=datastore_target)
    real = launcher.run_job(migration, target=datastore_target,
                            pipeline_args=MULTI_PROCESSING)
    assert real.status == 'completed', real.error
    expected = [line.replace('DRY RUN: would put', 'WRITES: put')
                .replace(' (nothing was written)', '')
                for line in store_output(dry)]
    assert store_output(real) == expected
    rerun = launcher.run_job(migration, target=datastore_target)
    assert store_output(rerun) == ["['ALREADY_MIGRATED', 59]"]
