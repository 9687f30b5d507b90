"""lifecycle/hooks.py: the legacy hooks a job may override, each called once
per run at its end, through the legacy API as real one-off jobs used them;
and calling one by the job's name."""

import pytest

from beam_jobs import cli, jobs, testing
from beam_jobs import job_class as job_class_lib
from beam_jobs.lifecycle import hooks
from beam_jobs.records import runs
from tests import cli_process
from tests import job_fixtures as fx


@pytest.fixture(autouse=True)
def _hook_calls():
    fx.HOOK_CALLS.clear()


_put_notes = fx.put_notes


def test_hooks_of_a_completed_run(datastore_target):
    _put_notes(datastore_target)
    job_id = fx.HookedJob.create_new()
    fx.HookedJob.enqueue(job_id)
    assert fx.HookedJob.get_status_code(job_id) == jobs.STATUS_CODE_COMPLETED
    assert fx.HOOK_CALLS == [('pre_start', job_id), ('post_completed', job_id)]


def test_hooks_of_a_failed_run(datastore_target):
    _put_notes(datastore_target, text='bad')
    job_id = fx.HookedFailFastJob.create_new()
    fx.HookedFailFastJob.enqueue(job_id)
    assert fx.HookedFailFastJob.get_status_code(job_id) == jobs.STATUS_CODE_FAILED
    assert fx.HOOK_CALLS == [('pre_start', job_id), ('post_failure', job_id)]


def test_hooks_of_a_run_canceled_before_it_started(datastore_target):
    job_id = fx.HookedJob.create_new()
    fx.HookedJob.cancel(job_id, 'alice')
    assert fx.HOOK_CALLS == [('pre_cancel', job_id, 'Canceled by alice.'),
                             ('post_cancel', job_id, 'Canceled by alice.')]
    assert fx.HookedJob.get_status_code(job_id) == jobs.STATUS_CODE_CANCELED


def test_hooks_of_a_run_canceled_in_another_process(datastore_target, tmp_path,
                                                    monkeypatch, capsys):
    """The run's own process ends it, so it calls the hooks, once each."""
    _put_notes(datastore_target, count=200, text='slow')
    log = tmp_path / 'hooks.log'
    monkeypatch.setenv(fx.HOOK_LOG_ENV, str(log))
    proc, run_id = cli_process.start_run('HookedJob')
    store = runs.RunStore(datastore_target)
    cli_process.wait_until_started(store, run_id)
    assert fx.HookedJob.is_active(run_id)
    assert cli.main([*cli_process.REGISTRY, 'cancel', run_id, '--user', 'bob']) == 0
    proc.wait(timeout=60)
    assert log.read_text().splitlines() == [
        f'pre_start {run_id}',
        f'pre_cancel {run_id} | Canceled by bob.',
        f'post_cancel {run_id} | Canceled by bob.']
    assert fx.HOOK_CALLS == []   # none ran in the canceling process
    assert not fx.HookedJob.is_active(run_id)
    assert not fx.HookedJob.has_finished(run_id)   # canceled is not finished


def test_a_hook_that_raises_is_recorded_and_the_run_stands(datastore_target):
    _put_notes(datastore_target)
    job_id = fx.BrokenHooksJob.create_new()
    fx.BrokenHooksJob.enqueue(job_id)
    record = fx.BrokenHooksJob.get_record(job_id)
    assert record.status == runs.COMPLETED
    assert record.hook_errors == [
        '_pre_start_hook: RuntimeError: pre_start broke',
        '_post_completed_hook: RuntimeError: post_completed broke']
    assert fx.BrokenHooksJob.get_output(job_id) == ["['t0', 2]", "['t1', 2]"]


def test_a_hook_is_called_by_the_jobs_name_and_one_that_raises_is_named():
    job_class_lib.remember(fx.HookedJob)
    job_class_lib.remember(fx.BrokenHooksJob)
    assert hooks.after_end('HookedJob', 'run-1', 'canceled', 'Canceled by bob.') is None
    assert hooks.after_end('HookedJob', 'run-1', 'started') is None    # not an end
    assert hooks.call('HookedJob', '_no_such_hook', 'run-1') is None
    assert fx.HOOK_CALLS == [('post_cancel', 'run-1', 'Canceled by bob.')]
    assert hooks.call('BrokenHooksJob', '_pre_start_hook', 'run-2') == \
        '_pre_start_hook: RuntimeError: pre_start broke'


def test_a_job_is_found_in_the_configured_registry_or_not_at_all(monkeypatch):
    monkeypatch.setenv('BEAM_JOBS_REGISTRY', 'tests.fixture_registry')
    assert hooks.resolve('SlowJob') is fx.SlowJob
    assert hooks.resolve('NoSuchJob') is None
    assert hooks.call('NoSuchJob', '_pre_start_hook', 'run-3') is None   # no hooks run
