import pytest
from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

from beam_jobs import config, options


def test_local_runner_is_chosen_explicitly(monkeypatch):
    monkeypatch.delenv('BEAM_JOBS_RUNNER', raising=False)
    opts = options.pipeline_options([])
    assert opts.view_as(StandardOptions).runner == 'FnApiRunner'
    assert options.is_local(opts)
    direct = opts.view_as(DirectOptions)
    assert direct.direct_running_mode == options.LOCAL_RUNNING_MODE
    assert direct.direct_num_workers == options.LOCAL_NUM_WORKERS


def test_user_flags_pass_through_untouched():
    opts = options.pipeline_options(['--direct_num_workers=3',
                                     '--direct_running_mode=multi_threading'])
    direct = opts.view_as(DirectOptions)
    assert (direct.direct_num_workers, direct.direct_running_mode) == (3, 'multi_threading')


def test_bad_flags_are_a_value_error_with_beams_message():
    with pytest.raises(ValueError, match="Bad pipeline flag .*invalid choice: 'x'"):
        options.pipeline_options(['--direct_running_mode=x'])
    with pytest.raises(ValueError, match='--runner=Nope is not a runner Beam knows'):
        options.pipeline_options(['--runner=Nope'])


def test_settings_from_pyproject_and_environment(tmp_path, monkeypatch):
    (tmp_path / 'pyproject.toml').write_text(
        '[tool.beam-jobs]\nregistry = "my.jobs"\nregion = "europe-west1"\n')
    sub = tmp_path / 'sub'
    sub.mkdir()
    monkeypatch.chdir(sub)
    monkeypatch.delenv('BEAM_JOBS_REGISTRY', raising=False)
    assert config.get('registry') == 'my.jobs'
    monkeypatch.setenv('BEAM_JOBS_REGISTRY', 'other.jobs')
    assert config.get('registry') == 'other.jobs'
    assert config.get('missing', 'default') == 'default'


def test_broken_pyproject_is_named(tmp_path, monkeypatch):
    (tmp_path / 'pyproject.toml').write_text('[tool.beam-jobs\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match='pyproject.toml is not valid TOML'):
        config.get('registry')
