"""Starting and stopping the local Datastore emulator."""

import os
import subprocess

import pytest

from beam_jobs import cli, emulator, emulator_process


def _group_members(group):
    out = subprocess.run(['ps', '-eo', 'pgid='], capture_output=True, text=True).stdout
    return [line for line in out.split() if line == str(group)]


def test_stop_ends_the_java_child_too(tmp_path):
    running = emulator.start(data_dir=tmp_path / 'ds')
    group = running.process_group
    assert running.is_alive()
    assert len(_group_members(group)) >= 2   # the launcher script and java
    running.stop()
    assert not running.is_alive()
    assert _group_members(group) == []


def test_an_in_memory_emulator_has_a_folder_of_its_own():
    """Emulators sharing a settings folder rewrite its index.yaml at once."""
    first, second = emulator.start(), emulator.start()
    try:
        assert first.scratch_dir != second.scratch_dir
    finally:
        first.stop()
        second.stop()
    assert not os.path.exists(first.scratch_dir)


def test_data_on_disk_survives_a_restart(tmp_path, monkeypatch):
    from google.cloud import datastore as ds
    for attempt in range(2):
        running = emulator.start(data_dir=tmp_path / 'ds', project='p')
        try:
            monkeypatch.setenv('DATASTORE_EMULATOR_HOST', running.host)
            client = ds.Client(project='p')
            if attempt == 0:
                entity = ds.Entity(client.key('K', 'kept'))
                entity['v'] = 1
                client.put(entity)
            else:
                assert client.get(client.key('K', 'kept'))['v'] == 1
        finally:
            running.stop()


def test_managed_emulator_commands(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(emulator.HOME_ENV, str(tmp_path))
    monkeypatch.delenv('DATASTORE_EMULATOR_HOST', raising=False)
    try:
        assert cli.main(['emulator', 'status']) == 0
        assert capsys.readouterr().out.splitlines()[0] == 'Not running.'
        assert cli.main(['emulator', 'start']) == 0
        out = capsys.readouterr().out
        assert 'Emulator running on localhost:' in out
        assert 'export DATASTORE_EMULATOR_HOST=localhost:' in out
        assert cli.main(['emulator', 'status']) == 0
        assert capsys.readouterr().out.startswith('Running on localhost:')
        assert emulator.start_managed().host == emulator.read_managed().host
    finally:
        assert cli.main(['emulator', 'stop']) == 0
    assert capsys.readouterr().out.startswith('Stopped the emulator')
    assert emulator.read_managed() is None


def test_commands_start_an_emulator_when_none_is_set(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(emulator.HOME_ENV, str(tmp_path))
    monkeypatch.delenv('DATASTORE_EMULATOR_HOST', raising=False)
    result = subprocess.run(
        [os.sys.executable, '-m', 'beam_jobs.cli', 'runs'],
        env={k: v for k, v in os.environ.items() if k != 'DATASTORE_EMULATOR_HOST'},
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 'Started a Datastore emulator on localhost:' in result.stderr
    assert str(tmp_path / 'datastore') in result.stderr
    assert '(no runs yet' in result.stdout
    assert emulator.read_managed() is None   # and it stopped with the command


def test_missing_sdk_names_what_to_install(monkeypatch):
    monkeypatch.setattr(emulator_process, '_LAUNCHER_RELATIVE', 'no/such/launcher')
    with pytest.raises(emulator.EmulatorError, match='install the Google Cloud CLI'):
        emulator.start()


def test_missing_java_names_what_to_install(monkeypatch):
    monkeypatch.setattr(emulator_process.shutil, 'which',
                        lambda name: None if name == 'java' else '/usr/bin/' + name)
    with pytest.raises(emulator.EmulatorError, match='install Java 17'):
        emulator.start()
