"""Run records, stored output and failures, on the emulator."""

import os
import re
import subprocess
import sys

import pytest
from google.cloud import datastore as ds

from beam_jobs import output_format
from beam_jobs import target as target_lib
from beam_jobs import testing
from beam_jobs.io import stored_output
from beam_jobs.lifecycle import follow, launcher
from beam_jobs.records import runs
from tests import job_fixtures as fx


def _store(target):
    return runs.RunStore(target)


def test_record_moves_through_statuses(datastore_target):
    store = _store(datastore_target)
    record = store.create('TopicCountJob')
    assert record.run_id.startswith('TopicCountJob-')
    assert store.get(record.run_id).status == runs.NEW
    record = launcher.run_job(fx.TopicCountJob, run_id=record.run_id,
                              params={'x': 1}, shard_count=4,
                              target=datastore_target)
    assert record.status == runs.COMPLETED
    stored = store.get(record.run_id)
    assert stored.status == runs.COMPLETED
    assert stored.queued_msec <= stored.started_msec <= stored.finished_msec
    assert stored.shard_count == 4 and stored.params == {'x': 1}
    assert stored.runner == 'FnApiRunner'
    assert stored.pid == os.getpid()


@pytest.mark.parametrize('path', [
    [runs.COMPLETED], [runs.STARTED], [runs.QUEUED, runs.COMPLETED],
    [runs.CANCELED, runs.QUEUED]])
def test_other_transitions_are_refused(datastore_target, path):
    store = _store(datastore_target)
    run_id = store.create('J').run_id
    with pytest.raises(runs.InvalidTransitionError, match='cannot become'):
        for status in path:
            store.transition(run_id, status)


def test_unknown_run(datastore_target):
    with pytest.raises(runs.UnknownRunError, match='beam-jobs runs'):
        _store(datastore_target).get('NoSuchJob-1-1')


def test_orphaned_run_is_marked_failed_when_followed(datastore_target):
    store = _store(datastore_target)
    run_id = store.create('J').run_id
    store.transition(run_id, runs.QUEUED)
    store.transition(run_id, runs.STARTED)
    # Pretend a process that has since died was running it.
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    store.update(run_id, pid=dead.pid, process_start='0')
    # The store only stores: reading a record never ends a run.
    assert store.get(run_id).status == runs.STARTED
    record = follow.current(store, run_id)
    assert record.status == runs.FAILED
    assert 'Orphaned' in record.error and str(dead.pid) in record.error


def test_map_failures_are_listed_and_the_run_completes(datastore_target):
    with testing.ndb_context(datastore_target):
        testing.put_models(datastore_target, [
            fx.NoteModel(id='a', text='fine'), fx.NoteModel(id='b', text='bad'),
            fx.NoteModel(id='c', text='shape')])
    record = launcher.run_job(fx.FailingMapJob, target=datastore_target)
    assert record.status == runs.COMPLETED
    assert record.error_count == 2 and record.counters['errors'] == 2
    lines = _store(datastore_target).output(record.run_id)
    # Failures come first, each naming the entity and the reason.
    assert lines[0].startswith('ERROR in map for NoteModel/b: ValueError: cannot migrate note b')
    assert lines[1].startswith('ERROR in map for NoteModel/c: TypeError')
    assert lines[2:] == ["['ok', 1]"]


def test_fail_fast_run_ends_failed_with_the_reason(datastore_target):
    with testing.ndb_context(datastore_target):
        testing.put_models(datastore_target, [fx.NoteModel(id='b', text='bad')])
    record = launcher.run_job(fx.FailFastJob, target=datastore_target)
    assert record.status == runs.FAILED
    assert 'NoteModel/b' in record.error and 'cannot migrate note b' in record.error
    assert _store(datastore_target).get(record.run_id).status == runs.FAILED


def test_bad_pipeline_flags_are_refused_before_a_record_exists(datastore_target):
    with pytest.raises(ValueError, match='sideways'):
        launcher.run_job(fx.TopicCountJob, target=datastore_target,
                         pipeline_args=['--direct_running_mode=sideways'])
    assert _store(datastore_target).recent() == []
    assert launcher.run_job(fx.TopicCountJob, target=datastore_target).status == runs.COMPLETED


def test_bad_flags_end_an_existing_record_failed(datastore_target):
    """The legacy path: create_new made the record, so bad input ends it."""
    run_id = _store(datastore_target).create('TopicCountJob').run_id
    record = launcher.run_job(fx.TopicCountJob, run_id=run_id, target=datastore_target,
                              pipeline_args=['--dryrun'])
    assert record.status == runs.FAILED
    assert 'Unknown flag --dryrun' in _store(datastore_target).get(run_id).error


def test_a_datastore_error_shows_its_grpc_status_not_beams_wrapper(datastore_target):
    with testing.ndb_context(datastore_target):
        testing.put_models(datastore_target, fx.notes(1))
    record = launcher.run_job(fx.HugePutJob, target=datastore_target)
    assert record.status == runs.FAILED
    assert re.fullmatch(r"Datastore error while running '[^']*/Write/Apply writes/Apply': "
                        r"[A-Z_]+: [^\[]+", record.error), record.error
    assert "has no attribute 'value'" not in record.error
    with open(record.log_file, encoding='utf-8') as log:   # the whole story
        assert 'Traceback' in log.read()


def test_bad_shard_count_is_refused_before_the_run(datastore_target):
    with pytest.raises(ValueError, match='shard_count must be a positive whole number'):
        launcher.run_job(fx.TopicCountJob, target=datastore_target, shard_count=-2)


def test_big_output_is_collapsed_capped_and_split(datastore_target):
    with testing.ndb_context(datastore_target):
        testing.put_models(datastore_target, fx.notes(20))
    record = launcher.run_job(fx.BigOutputJob, target=datastore_target)
    assert record.status == runs.COMPLETED
    assert record.output_line_count == 1000   # about 2 MB of report
    lines = _store(datastore_target).output(record.run_id)
    assert sum(len(line) for line in lines) <= output_format.MAX_OUTPUT_CHARS + 100
    assert lines[-1].startswith('<TRUNCATED: ') and 'more lines' in lines[-1]
    client = target_lib.client(datastore_target)
    first = client.get(client.key(stored_output.OUTPUT_KIND, f'{record.run_id}.00000'))
    assert first['piece_count'] > 1  # no entity near the 1 MiB limit


def test_collapse_keeps_first_seen_order_and_failures_first():
    failure = 'ERROR in map for K/1: ValueError: x'
    stored = output_format.collapse(['b', 'a', 'b', failure, "['ERROR: y', 1]", 'c', 'b'])
    assert stored.lines == [failure, '(3x) b', 'a', "['ERROR: y', 1]", 'c']
    assert stored.kinds == 'FRRER'
    assert stored.counts == output_format.Counts(lines=7, failed_items=1, error_lines=1)


def test_collapse_cap_marker():
    lines = ['%05d' % i + 'z' * 995 for i in range(1000)]   # 1,000,000 chars
    stored = output_format.collapse(lines).lines
    assert stored[-1] == '<TRUNCATED: 100 more lines (100000 characters) not stored>'
    assert len(stored) == 901


def test_cancel_a_new_run(datastore_target):
    job_id = fx.TopicCountJob.create_new()
    fx.TopicCountJob.cancel(job_id, 'release-coordinator')
    record = fx.TopicCountJob.get_record(job_id)
    assert record.status == runs.CANCELED
    assert record.canceled_by == 'release-coordinator'
    with pytest.raises(runs.InvalidTransitionError, match='already ended'):
        fx.TopicCountJob.cancel(job_id, 'someone')


def test_a_record_stored_flat_before_the_split_loads_with_its_dataflow_part(
        datastore_target):
    """Records are stored flat, as before a Dataflow run's fields moved to
    `RunRecord.dataflow`: one written then loads, and is written back the same."""
    client = target_lib.client(datastore_target)
    entity = ds.Entity(client.key(runs.RECORD_KIND, 'OldJob-1'),
                       exclude_from_indexes=('console_url', 'follow_error'))
    entity.update(job_name='OldJob', status=runs.STARTED, created_msec=5,
                  runner='DataflowRunner', dataflow_job_id='2026-01-01_job',
                  console_url='https://console/job', dataflow_project='prod',
                  dataflow_region='europe-west1', dataflow_endpoint=None,
                  counters_attempted=True, followed_msec=7, follow_error=None,
                  stages_json='[{"name": "F1", "state": "running"}]',
                  budget_json='{"max_cost_usd": 5.0}', counters_json='{"read": 3}',
                  retired_field='an old version wrote it')
    client.put(entity)
    record = runs.RunStore(datastore_target).get('OldJob-1')
    assert (record.job_name, record.status, record.counters) == (
        'OldJob', runs.STARTED, {'read': 3})
    assert record.dataflow == runs.DataflowRun(
        job_id='2026-01-01_job', console_url='https://console/job', project='prod',
        region='europe-west1', budget={'max_cost_usd': 5.0}, counters_attempted=True,
        stages=[{'name': 'F1', 'state': 'running'}], followed_msec=7)
    stored = record.to_entity(client)
    assert {name: stored[name] for name in ('dataflow_job_id', 'console_url',
                                            'counters_attempted', 'stages_json')} == {
        'dataflow_job_id': '2026-01-01_job', 'console_url': 'https://console/job',
        'counters_attempted': True,
        'stages_json': '[{"name": "F1", "state": "running"}]'}
    assert 'dataflow' not in stored and 'dataflow' not in record.stored_fields()
