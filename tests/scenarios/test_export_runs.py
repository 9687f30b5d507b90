"""Jobs run over a managed export: the same report, no writes, named source."""

import re

import pytest
from apache_beam.options.pipeline_options import DirectOptions

from beam_jobs import cli, options, testing
from beam_jobs.lifecycle import launcher, planning
from beam_jobs.lifecycle import run_logs
from beam_jobs.records import runs
from pipelines import exp_jobs_one_off, sample_data
from pipelines.models import exp_models

AUDIT = exp_jobs_one_off.InteractionAuditOneOffJob
MIGRATION = exp_jobs_one_off.ExplorationContentMigrationOneOffJob


def _cli(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _report(out):
    """What `run` printed, without the run id and the timing."""
    return [line for line in out.splitlines()
            if not line.startswith(('Run ', 'Summary: '))]


def _exported(capsys, target, tmp_path, count=40):
    sample_data.load(count, target)
    code, out, err = _cli(capsys, 'export', str(tmp_path / 'export'))
    assert code == 0, err
    assert out.splitlines()[0] == f'Exported ExplorationModel {count}.'
    return out.splitlines()[-1]


@pytest.fixture(params=['in_memory', 'processes'])
def export_mode(request, monkeypatch):
    """Small exports run in this process; large ones in one worker process
    per core (options.use_processes_for_export), counting progress there."""
    if request.param == 'processes':
        monkeypatch.setenv('BEAM_JOBS_EXPORT_PROCESSES_FROM', '1')
        monkeypatch.setattr(options.os, 'cpu_count', lambda: 2)
    return request.param


def test_a_job_over_an_export_prints_the_report_the_datastore_gives(
        capsys, datastore_target, tmp_path, export_mode):
    path = _exported(capsys, datastore_target, tmp_path)
    assert path.endswith('.overall_export_metadata')
    code, from_datastore, _ = _cli(capsys, 'run', AUDIT.__name__)
    assert code == 0
    code, from_export, _ = _cli(capsys, 'run', AUDIT.__name__, '--export', path)
    assert code == 0
    assert _report(from_export) == _report(from_datastore)
    run_id = re.search(r'^Run (\S+)$', from_export, re.M).group(1)
    record = runs.RunStore(datastore_target).get(run_id)
    assert record.source['type'] == 'export'
    assert record.source['path'] == path
    assert record.source['entities'] == {'ExplorationModel': 40}
    assert record.source['timestamp'] in path
    assert record.progress['read'] == {'ExplorationModel': 40}
    assert record.progress['total'] == {'ExplorationModel': 40}
    # The workers' tallies were added up, then their folder removed.
    assert not list(run_logs.logs_dir().glob('*.progress'))
    code, status, _ = _cli(capsys, 'status', run_id)
    assert f'source: export {path} (taken ' in status


def test_a_run_over_an_export_never_writes(capsys, datastore_target, tmp_path):
    path = _exported(capsys, datastore_target, tmp_path)
    code, out, _ = _cli(capsys, 'run', MIGRATION.__name__, '--export', path)
    assert code == 0
    assert ('DRY RUN: would put 13 ExplorationModel (a run over an export writes '
            'to no Datastore)') in out
    with testing.ndb_context(datastore_target):
        assert exp_models.ExplorationModel.query(
            exp_models.ExplorationModel.states_schema_version == 1).count() == 13


def test_the_legacy_enqueue_takes_the_export_as_a_param(capsys, datastore_target,
                                                        tmp_path):
    path = _exported(capsys, datastore_target, tmp_path)
    job_id = MIGRATION.create_new()
    MIGRATION.enqueue(job_id, additional_job_params={'export': str(tmp_path / 'export')})
    record = MIGRATION.get_record(job_id)
    assert record.status == runs.COMPLETED, record.error
    assert record.source['path'] == path and record.params == {}
    assert MIGRATION.get_output(job_id) == [
        "['ALREADY_MIGRATED', 26]", "['MIGRATED', 13]",
        'DRY RUN: would put 13 ExplorationModel (a run over an export writes to '
        'no Datastore)']


def test_bad_exports_are_refused_before_a_run_exists(capsys, datastore_target, tmp_path):
    code, out, err = _cli(capsys, 'run', AUDIT.__name__, '--export',
                          str(tmp_path / 'nowhere'))
    assert code == cli.EXIT_USAGE and out == ''
    assert str(tmp_path / 'nowhere') in err and err.count('\n') == 1
    path = _exported(capsys, datastore_target, tmp_path)
    code, out, err = _cli(capsys, '--registry', 'tests.fixture_registry', 'run',
                          'TopicCountJob', '--export', path)
    assert code == cli.EXIT_USAGE
    assert 'holds no NoteModel entities' in err and 'ExplorationModel' in err
    assert runs.RunStore(datastore_target).recent() == []


def test_large_exports_are_mapped_in_a_worker_process_per_core(
        capsys, datastore_target, tmp_path, monkeypatch):
    path = _exported(capsys, datastore_target, tmp_path, count=10)
    monkeypatch.setattr(options.os, 'cpu_count', lambda: 2)

    def mode(*flags, threshold=None):
        if threshold is not None:
            monkeypatch.setenv('BEAM_JOBS_EXPORT_PROCESSES_FROM', str(threshold))
        plan = planning.plan_run(AUDIT, pipeline_args=list(flags), export=path)
        direct = plan.pipeline_options.view_as(DirectOptions)
        return direct.direct_running_mode, direct.direct_num_workers

    assert mode() == (options.LOCAL_RUNNING_MODE, options.LOCAL_NUM_WORKERS)  # off by default
    assert mode(threshold=10) == ('multi_processing', 2)
    assert mode(threshold=11) == ('in_memory', 1)
    assert mode(threshold=0) == ('in_memory', 1)                   # turned off
    # The user's choice wins.
    monkeypatch.setenv('BEAM_JOBS_EXPORT_PROCESSES_FROM', '1')
    assert mode('--direct_running_mode=in_memory') == ('in_memory', 1)
    assert mode('--direct_num_workers=1') == ('in_memory', 1)
    # The Datastore path keeps one in-memory worker: the JVM needs the other core.
    plan = planning.plan_run(AUDIT)
    assert plan.pipeline_options.view_as(DirectOptions).direct_running_mode == 'in_memory'


def test_run_job_takes_an_export(capsys, datastore_target, tmp_path):
    path = _exported(capsys, datastore_target, tmp_path, count=10)
    record = launcher.run_job(AUDIT, target=datastore_target, export=path)
    assert record.status == runs.COMPLETED
    assert record.counters['entities_read.ExplorationModel'] == 10


def test_emulator_import_loads_an_export(capsys, datastore_target, tmp_path):
    written = tmp_path / 'sample'
    assert sample_data.main(['--export', str(written), '--explorations', '7',
                             '--namespace', datastore_target.namespace]) == 0
    capsys.readouterr()
    code, out, err = _cli(capsys, 'emulator', 'import', str(written))
    assert code == 0, err
    assert out.startswith('Imported 7 entities from ')
    with testing.ndb_context(datastore_target):
        assert exp_models.ExplorationModel.query().count() == 7
    code, _, err = _cli(capsys, 'emulator', 'import')
    assert code == cli.EXIT_USAGE and 'takes the export to load' in err
