"""One rule for what an error line is, and every surface agreeing on it.

A job that yields its own ERROR lines (an audit's findings) completes with no
failed item; its output still reports errors. The CLI, the record, the
console's API and page, and a rehearsal must all say so.
"""

import re

import pytest

from beam_jobs import cli, output_format, testing
from beam_jobs.export import write_export
from beam_jobs.records import runs
from tests import console_helpers
from tests import job_fixtures as fx

FINDING = "['ERROR: a note has no topic', ['note-001', 'note-004']]"


def _notes():
    notes = fx.notes(6)
    for note in notes:
        if note.key.id() in ('note-001', 'note-004'):
            note.topic = None
    return notes


@pytest.fixture
def audited(datastore_target):
    with testing.ndb_context(datastore_target):
        testing.put_models(datastore_target, _notes())
    return datastore_target


def test_the_rule(datastore_target):
    assert output_format.is_error_text("['ERROR: x', [1]]")
    assert output_format.is_error_text('("ERROR", 1)')
    assert output_format.is_error_text('ERROR in map for K/1: ValueError: x')
    assert not output_format.is_error_text("['VALID', 4]")
    assert output_format.classify('(3x) ' + FINDING) == output_format.ERROR
    assert output_format.classify('ERROR in map for K/1: E: x (at f.py:1)') == output_format.FAILURE
    assert output_format.classify('WRITES: put 3 K') == output_format.SUMMARY
    assert output_format.classify('<TRUNCATED: 3 more lines (10 characters) not stored>') \
        == output_format.TRUNCATED
    # A job's error line stays where its key puts it; only failures go first.
    stored = output_format.collapse(["['A', 1]", FINDING, 'ERROR in map for K/1: E: x'])
    assert stored.lines[0].startswith('ERROR in map') and stored.kinds == 'FRE'


def test_cli_record_console_and_page_agree(audited, capsys):
    code = cli.main(['--registry', 'tests.console_helpers', 'run', 'NoteAuditJob'])
    out, err = capsys.readouterr()
    run_id = re.search(r'^Run (\S+)$', out, re.M).group(1)
    # The CLI: the finding in the output, a banner, the summary, exit 3.
    assert FINDING in out
    assert '!!! 1 ERROR LINE(S)' in err
    assert '0 failed items; 1 error line;' in out
    assert code == cli.EXIT_ITEMS_FAILED
    # The record.
    record = runs.RunStore(audited).get(run_id)
    assert (record.status, record.error_count, record.error_line_count) == (
        runs.COMPLETED, 0, 1)
    stored = runs.RunStore(audited).stored_output(run_id)
    assert stored.error_lines == [FINDING] and stored.failure_lines == []
    # `status` says it too.
    assert cli.main(['status', run_id]) == 0
    out, err = capsys.readouterr()
    assert re.search(r'error lines: 1$', out, re.M) and '!!! 1 ERROR LINE(S)' in err
    # The console's API and page.
    with console_helpers.client(audited) as client:
        shown = client.get(f'/api/runs/{run_id}').json()
        assert shown['label'] == 'Completed, 1 error line' and shown['has_errors']
        output = client.get(f'/api/runs/{run_id}/output').json()
        assert output['error_lines'] == [FINDING]
        page = client.get(f'/runs/{run_id}').text
        assert 'Completed, 1 error line' in page and 'has-failures' in page
        assert 'Failed items and error lines (1)' in page
        assert f'<div class="line line-error">{FINDING.replace(chr(39), "&#39;")}</div>' in page


def test_a_rehearsal_fails_on_error_lines(audited, tmp_path, capsys):
    with testing.ndb_context(audited):
        export = write_export(_notes(), str(tmp_path / 'notes'), project=audited.project)
    registry = ['--registry', 'tests.rehearsal_registry']
    # As a verify job: its error line fails the rehearsal.
    code = cli.main([*registry, 'rehearse', 'TopicCountJob', '--export', export,
                     '--verify', 'NoteAuditJob'])
    out, err = capsys.readouterr()
    assert code == cli.EXIT_ITEMS_FAILED, out + err
    assert 'Verify job NoteAuditJob reported 1 ERROR line(s)' in out
    # As the job itself: its error line fails it, unless the expected output
    # names it.
    code = cli.main([*registry, 'rehearse', 'NoteAuditJob', '--export', export])
    out, err = capsys.readouterr()
    assert code == cli.EXIT_ITEMS_FAILED
    assert "The job's run reported 1 error line(s)" in out
    expected = tmp_path / 'expected.txt'
    expected.write_text("['VALID', 4]\nre:\\['ERROR: a note has no topic', .*\\]\n")
    code = cli.main([*registry, 'rehearse', 'NoteAuditJob', '--export', export,
                     '--expect', str(expected)])
    out, err = capsys.readouterr()
    assert code == cli.EXIT_OK, out + err
