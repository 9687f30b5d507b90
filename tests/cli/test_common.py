"""The README's table of exit codes is the code's: every EXIT_* constant in
cli/common.py is a row, with its number, and a refusal exits with the row
that says so."""

from __future__ import annotations

import pathlib
import re

import pytest

from beam_jobs import cli
from beam_jobs import refusals
from beam_jobs.cli import common

README = pathlib.Path(__file__).resolve().parents[2] / 'README.md'
_ROW = re.compile(r'^\| (\d+) \| `(EXIT_\w+)` \| (.+) \|$')


def _table() -> dict[str, tuple[int, str]]:
    """`{name: (code, meaning)}` from the README's exit-code table."""
    rows = [_ROW.match(line) for line in README.read_text().splitlines()]
    table = {row.group(2): (int(row.group(1)), row.group(3)) for row in rows if row}
    assert table, 'the README has no exit-code table (| 0 | `EXIT_OK` | … |)'
    return table


def _constants() -> dict[str, int]:
    return {name: value for name, value in vars(common).items()
            if name.startswith('EXIT_') and isinstance(value, int)}


def test_the_readme_table_is_the_constants():
    assert {name: code for name, (code, _) in _table().items()} == _constants()


def test_each_code_means_one_thing():
    codes = [code for code, _ in _table().values()]
    assert len(codes) == len(set(codes))


def test_a_refusal_exits_with_the_row_that_says_refused():
    code, meaning = _table()['EXIT_USAGE']
    assert refusals.Refused.exit_code == refusals.EXIT_CODE == code
    assert meaning.startswith('refused') and '`Refused`' in meaning


@pytest.mark.parametrize('kind', [refusals.Refused, refusals.NotFound,
                                  refusals.Conflict, refusals.NotAllowed])
def test_every_kind_of_refusal_is_its_sentence_and_that_code(kind, capsys, monkeypatch):
    def refuse(args):
        raise kind('No registry here: pass --registry MODULE.')
    monkeypatch.setattr(common, 'registry', refuse)
    assert cli.main(['list']) == _table()['EXIT_USAGE'][0]
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == (
        '', 'beam-jobs: No registry here: pass --registry MODULE.\n')
