"""Running `beam-jobs run` in a child process, as a coordinator's shell does."""

import os
import subprocess
import sys
import time

from beam_jobs.records import runs

REGISTRY = ['--registry', 'tests.fixture_registry']


def start_run(job_name, *args):
    """Start `beam-jobs run JOB`; returns the process and the run id it printed."""
    proc = subprocess.Popen(
        [sys.executable, '-m', 'beam_jobs.cli', *REGISTRY, 'run', job_name, *args],
        env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    return proc, proc.stdout.readline().split()[1]


def wait_until_started(store: runs.RunStore, run_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while store.get(run_id).status != runs.STARTED:
        assert time.monotonic() < deadline, f'run {run_id} never started'
        time.sleep(0.2)
