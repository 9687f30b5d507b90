import pytest

from beam_jobs import JobRegistry, registry
from tests import job_fixtures as fx


def test_find_by_name_and_list():
    jobs = JobRegistry([fx.TopicCountJob, fx.ParamJob])
    assert jobs.get('ParamJob') is fx.ParamJob
    assert jobs.names() == ['ParamJob', 'TopicCountJob']


def test_two_jobs_of_one_name_are_refused():
    other = type('TopicCountJob', (fx.TopicCountJob,), {})
    with pytest.raises(ValueError, match='Two jobs are named TopicCountJob'):
        JobRegistry([fx.TopicCountJob, other])


def test_unknown_name_lists_close_matches():
    jobs = JobRegistry([fx.TopicCountJob, fx.TopicTagMigrationJob, fx.ParamJob])
    with pytest.raises(registry.UnknownJobError,
                       match='Did you mean: TopicCountJob'):
        jobs.get('TopicCuontJob')
    with pytest.raises(registry.UnknownJobError, match='beam-jobs list'):
        jobs.get('Zzz')


def test_legacy_list_module(tmp_path, monkeypatch):
    (tmp_path / 'legacy_registry.py').write_text(
        'from tests.job_fixtures import TopicCountJob\n'
        'ONE_OFF_JOB_MANAGERS = [TopicCountJob]\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert registry.load('legacy_registry').names() == ['TopicCountJob']


def test_bad_module():
    with pytest.raises(registry.UnknownJobError, match='Could not import'):
        registry.load('no_such_module_here')
    with pytest.raises(registry.UnknownJobError, match='neither REGISTRY'):
        registry.load('tests.job_fixtures')
