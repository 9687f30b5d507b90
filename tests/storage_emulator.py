"""gcp-storage-emulator as pytest fixtures: Cloud Storage without the cloud.

Shared by the Dataflow submission tests (staging) and the export tests
(`gs://` exports); tests/conftest.py loads this module as a pytest plugin.
"""

import socket
import uuid

import pytest
from apache_beam.internal.gcp import auth as beam_auth
from gcp_storage_emulator.server import create_server
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from beam_jobs import testing

BUCKET = 'beam-jobs-test-staging'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('localhost', 0))
        return sock.getsockname()[1]


@pytest.fixture(scope='session')
def storage_server():
    """gcp-storage-emulator in this process, for the whole session."""
    port = _free_port()
    server = create_server('localhost', port, in_memory=True,
                           default_bucket=BUCKET)
    server.start()
    try:
        yield f'http://localhost:{port}'
    finally:
        server.stop()


@pytest.fixture
def gcs(storage_server, monkeypatch):
    """A storage client; Beam's `gs://` file system talks to the emulator too."""
    monkeypatch.setenv('STORAGE_EMULATOR_HOST', storage_server)
    # Beam's `gs://` file system looks for Google credentials once per
    # process and, finding none here, retries for ~22 s before it goes
    # anonymous, which is what the emulator wants: go anonymous at once.
    monkeypatch.setattr(beam_auth._Credentials, '_credentials_init', True)  # pylint: disable=protected-access
    monkeypatch.setattr(beam_auth._Credentials, '_credentials', None)  # pylint: disable=protected-access
    return storage.Client(project=testing.TEST_PROJECT,
                          credentials=AnonymousCredentials())


@pytest.fixture
def temp_location(gcs):
    """A Dataflow `--temp_location` of its own in the emulator's bucket."""
    return f'gs://{BUCKET}/{uuid.uuid4().hex[:8]}/tmp'
