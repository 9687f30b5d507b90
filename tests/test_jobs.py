"""The whole legacy job API, as real one-off jobs and their dashboards used it
(its lifecycle hooks: tests/lifecycle/test_hooks.py)."""

import datetime

import pytest

from beam_jobs import jobs, registry, testing
from beam_jobs.records import runs
from tests import job_fixtures as fx


@pytest.fixture(autouse=True)
def _hook_calls():
    fx.HOOK_CALLS.clear()


_put_notes = fx.put_notes


def test_status_and_timing_getters(datastore_target):
    _put_notes(datastore_target)
    job = fx.TopicCountJob
    job_id = job.create_new()
    assert not job.is_active(job_id) and not job.has_finished(job_id)
    assert job.get_time_queued_msec(job_id) is None
    job.enqueue(job_id)
    queued, started, finished = (job.get_time_queued_msec(job_id),
                                 job.get_time_started_msec(job_id),
                                 job.get_time_finished_msec(job_id))
    assert 0 < queued <= started <= finished
    assert job.has_finished(job_id) and not job.is_active(job_id)
    metadata = job.get_metadata(job_id)
    assert metadata['runner'] == 'FnApiRunner'
    assert metadata['log_file'].endswith(f'{job_id}.log')


@pytest.mark.parametrize('call', [
    lambda job, job_id: job.enqueue(job_id, 'one-off-jobs',
                                    additional_job_params={'topic': 't1'}),
    lambda job, job_id: job.enqueue(job_id, 'one-off-jobs', {'topic': 't1'}, 2),
    lambda job, job_id: job.enqueue(job_id, {'topic': 't1'}),
    lambda job, job_id: job.enqueue(job_id, additional_job_params={'topic': 't1'},
                                    shard_count=2),
])
def test_every_old_form_of_enqueue(datastore_target, call):
    _put_notes(datastore_target)
    job_id = fx.ParamJob.create_new()
    call(fx.ParamJob, job_id)
    record = fx.ParamJob.get_record(job_id)
    assert record.status == runs.COMPLETED, record.error
    assert record.params == {'topic': 't1'}
    assert fx.ParamJob.get_output(job_id) == ["['match', ['note-001', 'note-003']]"]


def test_a_missing_param_names_it_and_the_params_there_are(datastore_target):
    _put_notes(datastore_target, count=1)
    job_id = fx.ParamJob.create_new()
    fx.ParamJob.enqueue(job_id, additional_job_params={'topci': 'x'})
    [line] = fx.ParamJob.get_output(job_id)
    assert ("No job parameter 'topic' (given: entity_kinds, queued_time_msecs, "
            "topci)") in line


def test_params_may_not_shadow_the_frameworks(datastore_target):
    job_id = fx.ParamJob.create_new()
    fx.ParamJob.enqueue(job_id, additional_job_params={'queued_time_msecs': 1})
    record = fx.ParamJob.get_record(job_id)
    assert record.status == runs.FAILED
    assert "Job param 'queued_time_msecs' shadows a parameter" in record.error


def test_entity_created_before_job_queued(datastore_target):
    now = datetime.datetime.utcnow()
    with testing.ndb_context(datastore_target):
        testing.put_models(datastore_target, [
            fx.DatedModel(id='old', created_on=now - datetime.timedelta(days=1)),
            fx.DatedModel(id='future', created_on=now + datetime.timedelta(days=1))])
    job_id = fx.CreatedBeforeQueuedJob.create_new()
    fx.CreatedBeforeQueuedJob.enqueue(job_id)
    assert fx.CreatedBeforeQueuedJob.get_output(job_id) == [
        '[\'after\', ["[\'DatedModel\']:future"]]',
        '[\'before\', ["[\'DatedModel\']:old"]]']


def test_cancel_all_unfinished_jobs(datastore_target):
    first, second = fx.HookedJob.create_new(), fx.HookedJob.create_new()
    done = fx.TopicCountJob.create_new()
    fx.HookedJob.cancel_all_unfinished_jobs('carol')
    for job_id in (first, second):
        assert fx.HookedJob.get_record(job_id).status == runs.CANCELED
        assert ('post_cancel', job_id, 'Canceled by carol.') in fx.HOOK_CALLS
    assert fx.TopicCountJob.get_status_code(done) == runs.NEW   # other jobs untouched


def test_dashboard_helpers(datastore_target):
    _put_notes(datastore_target, text='bad')
    failed = fx.FailFastJob.create_new()
    fx.FailFastJob.enqueue(failed)
    completed = fx.TopicCountJob.create_new()
    fx.TopicCountJob.enqueue(completed)
    waiting = fx.TopicCountJob.create_new()

    recent = jobs.get_data_for_recent_jobs()
    assert [row['id'] for row in recent] == [waiting, completed, failed]
    assert recent[0]['is_cancelable'] and not recent[1]['is_cancelable']
    assert set(recent[1]) == {
        'id', 'job_type', 'status_code', 'time_started_msec', 'time_finished_msec',
        'is_cancelable', 'error', 'human_readable_time_started',
        'human_readable_time_finished'}
    assert [row['id'] for row in jobs.get_data_for_unfinished_jobs()] == [waiting]
    assert jobs.get_job_output(completed) == fx.TopicCountJob.get_output(completed)
    assert [r.run_id for r in jobs.get_stuck_jobs(60 * 60 * 1000)] == [failed]
    assert jobs.get_data_for_recent_jobs(recency_msec=0) == []


def test_a_registry_with_audit_jobs_lists_both(tmp_path, monkeypatch):
    (tmp_path / 'both_registry.py').write_text(
        'from tests.job_fixtures import TopicCountJob, ParamJob\n'
        'ONE_OFF_JOB_MANAGERS = [TopicCountJob]\n'
        'AUDIT_JOB_MANAGERS = [ParamJob, TopicCountJob]\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert registry.load('both_registry').names() == ['ParamJob', 'TopicCountJob']
    (tmp_path / 'audit_registry.py').write_text(
        'from tests.job_fixtures import ParamJob\nAUDIT_JOB_MANAGERS = [ParamJob]\n')
    assert registry.load('audit_registry').names() == ['ParamJob']
