"""Which Datastore keeps which records (lifecycle/record_stores.py): the one
place planning, the gate and every surface ask."""

from beam_jobs import options as options_lib
from beam_jobs import target as target_lib
from beam_jobs.lifecycle import record_stores

DATAFLOW = ['--runner=DataflowRunner', '--project=prod-project']


def _share(monkeypatch, project='team-records', namespace='signoff'):
    monkeypatch.setenv('BEAM_JOBS_RECORDS_PROJECT', project)
    monkeypatch.setenv('BEAM_JOBS_RECORDS_NAMESPACE', namespace)
    monkeypatch.delenv('BEAM_JOBS_RECORDS_EMULATOR_HOST', raising=False)


def test_without_shared_records_a_dataflow_run_keeps_them_in_its_project(monkeypatch):
    monkeypatch.delenv('BEAM_JOBS_RECORDS_PROJECT', raising=False)
    where = record_stores.runs_target(options_lib.pipeline_options(DATAFLOW), 'ns')
    assert (where.project, where.namespace) == ('prod-project', 'ns')
    assert record_stores.dataflow_runs_target('prod-project', 'ns') == where


def test_shared_records_keep_dataflow_runs_and_the_signoff(monkeypatch):
    _share(monkeypatch)
    shared = target_lib.Target('team-records', 'signoff')
    assert record_stores.runs_target(options_lib.pipeline_options(DATAFLOW), 'ns') == shared
    assert record_stores.signoff_target('ns') == shared
    # The console, which has its run records already, finds the same.
    assert record_stores.signoff_target_beside(target_lib.Target('local', 'x')) == shared


def test_the_consoles_signoff_is_beside_its_runs_when_nothing_is_shared(monkeypatch):
    monkeypatch.delenv('BEAM_JOBS_RECORDS_PROJECT', raising=False)
    runs_here = target_lib.Target('local', 'x')
    assert record_stores.signoff_target_beside(runs_here) == runs_here


def test_a_local_run_and_the_signoff_keep_records_on_this_machine(datastore_target,
                                                                  monkeypatch):
    monkeypatch.delenv('BEAM_JOBS_RECORDS_PROJECT', raising=False)
    local = record_stores.runs_target(options_lib.pipeline_options([]),
                                      datastore_target.namespace)
    assert local == record_stores.local_target(datastore_target.namespace)
    assert local.project == datastore_target.project
    assert record_stores.signoff_target(datastore_target.namespace) == local
