"""lifecycle/stops.py: what stops a run from outside its pipeline. SIGTERM
(`beam-jobs cancel`) becomes a stop with its reason; an emulator that stops
answering becomes a stop recorded `failed`. (A whole run stopped so:
tests/cli/test_run_commands.py, tests/scenarios/test_fault.py.)"""

import os
import signal
import socket
import time

import pytest

from beam_jobs import target as target_lib
from beam_jobs.lifecycle import stops
from beam_jobs.records import runs


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('localhost', 0))
        return sock.getsockname()[1]


def test_sigterm_becomes_a_stop_and_the_handlers_are_put_back():
    before = signal.getsignal(signal.SIGTERM)
    requested = []
    with pytest.raises(stops.StopRun, match='SIGTERM'):
        with stops.stop_on_signals(requested):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)       # the handler raises long before
    assert requested == [stops.Stop('stopped by SIGTERM (beam-jobs cancel)')]
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_emulator_that_stops_answering_stops_the_run_failed(monkeypatch):
    monkeypatch.setattr(stops.StopOnLostDatastore, 'INTERVAL_SECS', 0.05)
    host = f'localhost:{_free_port()}'
    requested = []
    with pytest.raises(stops.StopRun, match='Lost the Datastore'):
        with stops.stop_on_signals(requested), \
                stops.StopOnLostDatastore(host, requested) as watch:
            time.sleep(5)
    assert watch.lost and requested[0].status == runs.FAILED
    assert f'the emulator on {host} stopped answering' in requested[0].reason


def test_an_emulator_that_answers_stops_nothing(datastore_target, monkeypatch):
    monkeypatch.setattr(stops.StopOnLostDatastore, 'INTERVAL_SECS', 0.05)
    requested = []
    with stops.StopOnLostDatastore(target_lib.emulator_host(), requested) as watch:
        time.sleep(0.3)
    assert not watch.lost and requested == []
