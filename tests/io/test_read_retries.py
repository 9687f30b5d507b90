"""Reads that survive faults (io/read_retries.py, datastore_read.read_pages):
a query whose connection drops midway resumes from its cursor, counted; one
that keeps failing ends the run naming what it read; other failures are
never retried. The faults are real: a proxy (dropping_proxy.py) in front of
the session's emulator closes the connection while a page is in flight."""

import contextlib
import pathlib
import re
import uuid

import pytest
from google.api_core import exceptions as api_exceptions
from google.cloud import datastore

from beam_jobs import jobs, testing
from beam_jobs import target as target_lib
from beam_jobs.cli import common
from beam_jobs.io import datastore_read, read_retries
from beam_jobs.lifecycle import launcher
from beam_jobs.records import runs
from tests import job_fixtures as fx
from tests.dropping_proxy import DroppingProxy

COUNT = 1000     # four of the emulator's pages: 300, 300, 300, 100
KIND = b'NoteModel'
# A page of notes names the kind at least once a note; the split's sample of
# 32 keys about 65 times: only pages of hundreds of notes are numbered.
PAGE_MARKS = 150


class NoteIdsJob(jobs.BaseMapReduceOneOffJobManager):
    """How many notes were mapped, and how many different ones: a page read
    twice or skipped shows."""

    @classmethod
    def entity_classes_to_map_over(cls):
        return [fx.NoteModel]

    @staticmethod
    def map(item):
        yield ('notes', item.key.id())

    @staticmethod
    def reduce(key, values):
        yield [key, len(values), len(set(values))]


@pytest.fixture(scope='module')
def notes(datastore_emulator):
    """A namespace of notes, put once for the module's runs (which keep
    their records there too)."""
    target = target_lib.Target(datastore_emulator.project, f't{uuid.uuid4().hex[:12]}')
    with testing.ndb_context(target):
        testing.put_models(target, fx.notes(COUNT))
    return target


@contextlib.contextmanager
def through_proxy(emulator, drop, monkeypatch):
    """The Datastore clients talk to the emulator through a DroppingProxy
    that drops the pages `drop` picks; directly again afterwards."""
    with DroppingProxy(emulator.host, KIND, drop, PAGE_MARKS) as proxy, \
            monkeypatch.context() as patch:
        patch.setenv(target_lib.EMULATOR_HOST_ENV, proxy.host)
        yield proxy


@pytest.fixture
def short_backoff(monkeypatch):
    """The bound of a real run, with waits of milliseconds."""
    monkeypatch.setattr(read_retries, 'ATTEMPTS', 3)
    monkeypatch.setattr(read_retries, 'FIRST_DELAY_SECS', 0.01)
    monkeypatch.setattr(read_retries, 'MAX_DELAY_SECS', 0.02)


def test_a_query_dropped_twice_resumes_from_its_cursor(
        datastore_emulator, notes, short_backoff, monkeypatch):
    # One range (one query), so that each drop loses exactly one query's page.
    with through_proxy(datastore_emulator, lambda page: page in (2, 4),
                       monkeypatch) as proxy:
        record = launcher.run_job(NoteIdsJob, target=notes, shard_count=1)
    assert proxy.dropped == 2
    assert proxy.pages == 4 + 2     # each drop costs its page once more, no other request
    assert record.status == runs.COMPLETED, record.error
    assert runs.RunStore(notes).output(record.run_id) == [
        f"['notes', {COUNT}, {COUNT}]"]     # every note once
    assert record.counters['entities_read.NoteModel'] == COUNT
    assert record.counters['read_retries'] == 2
    assert f'read NoteModel {COUNT}; read retries 2;' in common.summary(record)
    # One warning a retry, in the run's log: what was read, and the status.
    warnings = re.findall(r'WARNING.*Reading (.*): (\w+) \(.*asking again from its last cursor',
                          pathlib.Path(record.log_file).read_text())
    assert warnings == [(f'kind NoteModel, every key, in namespace {notes.namespace} '
                         f'of project {notes.project}', 'UNAVAILABLE')] * 2


def test_a_query_that_keeps_failing_fails_the_run_naming_what_it_read(
        datastore_emulator, notes, short_backoff, monkeypatch):
    with through_proxy(datastore_emulator, lambda page: True, monkeypatch) as proxy:
        record = launcher.run_job(NoteIdsJob, target=notes, shard_count=2)
    assert record.status == runs.FAILED
    # One sentence: the kind, the key range (a split key, as a path), the
    # namespace, the status; no traceback.
    assert re.fullmatch(
        r'.*Reading kind NoteModel, keys (from|up to) NoteModel/note-\d+, in namespace '
        + notes.namespace + r' of project \S+ failed 3 times in a row with '
        r'UNAVAILABLE \(.+\); check that the Datastore is reachable and not '
        r"throttling, then run the job again\. \[while running '.*/Read'\]",
        record.error), record.error
    assert common.failure_banners(record)[0] == f'!!! RUN FAILED: {record.error}'
    assert common.exit_code(record) == common.EXIT_FAILED
    assert proxy.dropped >= 3


def test_no_retry_for_a_status_that_would_fail_again(datastore_target):
    """The emulator refuses a key filter of another namespace: INVALID_ARGUMENT,
    raised as it came, with no retry."""
    client = target_lib.client(datastore_target)
    query = datastore_read.KindQuery('NoteModel', client.project, datastore_target.namespace)
    elsewhere = datastore.Key('NoteModel', 'x', project=client.project, namespace='other')
    retries = []
    with pytest.raises(api_exceptions.InvalidArgument):
        list(datastore_read.read_pages(client, datastore_read.KeyRange(query, 0, elsewhere),
                                       before_retry=retries.append))
    assert retries == []


def test_which_statuses_are_retried():
    for retried in (api_exceptions.DeadlineExceeded, api_exceptions.ServiceUnavailable,
                    api_exceptions.Aborted):
        assert read_retries.is_retryable(retried('x'))
    assert read_retries.is_retryable(api_exceptions.ResourceExhausted('Quota exceeded.'))
    # gRPC's own size cap says RESOURCE_EXHAUSTED too, and would fail again.
    assert not read_retries.is_retryable(api_exceptions.ResourceExhausted(
        'Received message larger than max (9000000 vs. 4194304)'))
    for refused in (api_exceptions.InvalidArgument('x'), api_exceptions.PermissionDenied('x'),
                    ValueError('x')):
        assert not read_retries.is_retryable(refused)


def test_backoff_doubles_with_jitter_up_to_its_bound():
    backoff = read_retries.Backoff(attempts=6, first_delay=1.0, max_delay=5.0)
    for failure, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)]:
        delays = [backoff.delay(failure) for _ in range(50)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) > 1


def test_a_key_range_reads_as_words():
    query = datastore_read.KindQuery('Note', 'p', 'ns')
    def key(name):
        return datastore.Key('Note', name, project='p', namespace='ns')
    assert datastore_read.KeyRange(query, 0, key('a'), key('b')).describe() == (
        'kind Note, keys from Note/a up to Note/b, in namespace ns of project p')
    assert datastore_read.KeyRange(datastore_read.KindQuery('Note', 'p'), 0).describe() == (
        'kind Note, every key, in the default namespace of project p')
