# Fixtures for every test: the Datastore emulator (beam_jobs.testing) and
# Cloud Storage (tests/storage_emulator.py).
pytest_plugins = ['beam_jobs.testing', 'tests.storage_emulator', 'tests.dataflow_stub']


import os
import shutil
import tempfile

import pytest


@pytest.fixture(scope='session', autouse=True)
def _temporary_files_of_this_run():
    """Every temporary file of the run (Beam's staging folders for Dataflow
    submissions, which Beam never removes; those of the processes tests
    start) goes in one folder, removed when the run ends."""
    folder = tempfile.mkdtemp(prefix='beam-jobs-tests-')
    saved = os.environ.get('TMPDIR'), tempfile.tempdir
    os.environ['TMPDIR'] = tempfile.tempdir = folder
    try:
        yield folder
    finally:
        if saved[0] is None:
            os.environ.pop('TMPDIR', None)
        else:
            os.environ['TMPDIR'] = saved[0]
        tempfile.tempdir = saved[1]
        shutil.rmtree(folder, ignore_errors=True)
