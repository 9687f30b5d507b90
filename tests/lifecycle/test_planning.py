"""A run is planned once: its source and its write mode decided by `plan_run`,
and read, never decided again, by the pipeline, the gate and the console
(the gate's reading: tests/lifecycle/test_gate.py)."""

import functools
import sys

import pytest

from beam_jobs import cli, testing
from beam_jobs.io import sources, write_modes
from beam_jobs.lifecycle import backend, planning
from beam_jobs.records import runs
from tests import console_helpers
from tests import job_fixtures as fx


@pytest.mark.parametrize('params, reads_export, after, mode', [
    ({}, False, None, write_modes.APPLY),
    ({'dry_run': True}, False, None, write_modes.DRY_RUN),
    ({}, True, None, write_modes.REPORT_ONLY),
    ({'dry_run': True}, True, None, write_modes.DRY_RUN),
    ({}, True, 'AFTER', write_modes.AFTER_STATE),
])
def test_the_plan_decides_what_a_run_reads_and_writes(
        datastore_target, export, tmp_path, params, reads_export, after, mode):
    plan = planning.plan_run(fx.TopicCountJob, params, export=export if reads_export else None,
                             after_state=after and str(tmp_path / after))
    expected_source = sources.ExportSource if reads_export else sources.DatastoreSource
    assert isinstance(plan.source, expected_source)
    assert plan.write_mode.name == mode
    assert plan.write_mode.changes_datastore == (mode == write_modes.APPLY)


def test_the_pipeline_writes_where_the_plan_says(datastore_target, export):
    def steps(plan):
        pipeline = backend.build_pipeline(plan, 'r', datastore_target, 0)
        return ' '.join(t.unique_name for t in pipeline.to_runner_api()
                        .components.transforms.values())
    assert 'RunJob TopicTagMigrationJob/Write' in steps(planning.plan_run(fx.TopicTagMigrationJob))
    for plan in (planning.plan_run(fx.TopicTagMigrationJob, {'dry_run': True}),
                 planning.plan_run(fx.TopicTagMigrationJob, export=export)):
        assert 'RunJob TopicTagMigrationJob/Write' not in steps(plan)


def test_the_consoles_confirmation_is_the_plans(datastore_target, export):
    console = console_helpers.console(datastore_target)
    _, dry = console.plan_start({'job': 'TopicTagMigrationJob', 'dry_run': True})
    assert dry['writes'].startswith('Nothing: a dry run writes nothing')
    _, over_export = console.plan_start({'job': 'TopicTagMigrationJob', 'export': export})
    assert over_export['writes'].startswith('Nothing to any Datastore')
    assert over_export['reads'].startswith(f'the export {export}')
    _, real = console.plan_start({'job': 'TopicTagMigrationJob'})
    assert real['writes'].startswith('It may put or delete entities of kinds NoteModel')


def test_a_run_visits_its_record_to_create_start_and_end_it(
        datastore_target, monkeypatch, capsys):
    """Following `beam-jobs run` down: the record store is visited to create
    the run, to start it and to end it, and not in between."""
    with testing.ndb_context(datastore_target):
        testing.put_models(datastore_target, fx.notes(5))
    monkeypatch.setenv('BEAM_JOBS_PROGRESS_INTERVAL', '0')
    visits = []

    def traced(name, method):
        @functools.wraps(method)
        def visit(self, *args, **kwargs):
            caller = sys._getframe(1).f_globals['__name__']  # pylint: disable=protected-access
            if not caller.startswith('beam_jobs.records'):   # the store's own calls
                visits.append(name if name != 'transition' else f'transition {args[1]}')
            return method(self, *args, **kwargs)
        return visit
    for name in ('create', 'get', 'transition', 'update', 'set_progress', 'recent',
                 'unfinished', 'output', 'stored_output', 'output_counts'):
        monkeypatch.setattr(runs.RunStore, name, traced(name, getattr(runs.RunStore, name)))
    assert cli.main(['--registry', 'tests.fixture_registry', 'run', 'TopicCountJob']) == 0
    capsys.readouterr()
    assert visits == ['create',                                         # create
                      'transition queued', 'transition started',        # start
                      'output_counts', 'get', 'transition completed',   # end (the
                      # get: whether it has a backup to finish, ending.py)
                      'output']                                         # print it
