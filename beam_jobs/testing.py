"""What tests of jobs need: an emulator, a namespace per test, a pipeline.

Use it as a pytest plugin (`pytest_plugins = ['beam_jobs.testing']` in a
conftest.py). Tests get a real Datastore emulator, started once per test
session and stopped when it ends, and each test its own namespace so tests
never see each other's data.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Iterable, Iterator

import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from google.cloud import ndb

from beam_jobs import emulator as emulator_lib
from beam_jobs import emulator_process
from beam_jobs import ndb_context as ndb_context_lib
from beam_jobs import options
from beam_jobs import target as target_lib

TEST_PROJECT = 'beam-jobs-test'


def local_test_pipeline(*args: str) -> TestPipeline:
    """A TestPipeline on the local runner path (never the Prism download)."""
    return TestPipeline(runner=options.LOCAL_RUNNER,
                        options=options.pipeline_options(args))


@contextlib.contextmanager
def ndb_context(target: target_lib.Target) -> Iterator[None]:
    """An ndb context on `target`, for building and putting models in tests."""
    with ndb_context_lib.NdbContext(target).active():
        yield


def put_models(target: target_lib.Target, models: Iterable[ndb.Model]) -> None:
    with ndb_context(target):
        ndb.put_multi(list(models))


@pytest.fixture(scope='session')
def datastore_emulator(tmp_path_factory) -> Iterator[emulator_lib.Emulator]:
    """A fresh in-memory emulator for the session, always our own.

    A developer's long-lived emulator is never used: tests must not depend on
    or change data that is not theirs. Run logs and any project folder the
    tests make go to a temporary folder too (BEAM_JOBS_HOME).
    """
    running = emulator_lib.start(project=TEST_PROJECT)
    home = {emulator_lib.HOME_ENV: str(tmp_path_factory.mktemp('beam-jobs-home'))}
    saved = {name: os.environ.get(name) for name in [*running.env(), *home]}
    os.environ.update(running.env())
    os.environ.update(home)
    try:
        yield running
    finally:
        running.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope='session')
def firestore_emulator() -> Iterator[emulator_lib.Emulator]:
    """The Firestore emulator in Datastore mode, for the session, started by
    the first test that asks: the local emulator that keeps named databases
    apart (the Datastore emulator ignores database ids in queries). Tests
    point DATASTORE_EMULATOR_HOST at it themselves (`firestore_target`)."""
    running = emulator_process.start_firestore(project=TEST_PROJECT)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def firestore_target(firestore_emulator, datastore_emulator, monkeypatch) -> target_lib.Target:
    """A database of the Firestore emulator that belongs to this test alone,
    with this process pointed at that emulator and database."""
    database = f'db-{uuid.uuid4().hex[:10]}'
    monkeypatch.setenv(emulator_lib.EMULATOR_HOST_ENV, firestore_emulator.host)
    monkeypatch.setenv(target_lib.DATABASE_ENV, database)
    monkeypatch.delenv(target_lib.NAMESPACE_ENV, raising=False)
    return target_lib.Target(firestore_emulator.project, None, database=database)


@pytest.fixture
def datastore_target(datastore_emulator, monkeypatch) -> target_lib.Target:
    """A namespace of the test emulator that belongs to this test alone."""
    namespace = f't{uuid.uuid4().hex[:12]}'
    monkeypatch.setenv(target_lib.NAMESPACE_ENV, namespace)
    return target_lib.Target(datastore_emulator.project, namespace)
