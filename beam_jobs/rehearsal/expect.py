"""A job's expected output, and how a run's output measures up to it.

The file has one expected line per line: the exact text of an output line,
or `re:` followed by a regular expression the whole line must match. Blank
lines are ignored. Every expected line must match some output line (else it
is *missing*), and every output line must be matched by some expected line
(else it is *unexpected*): the check passes when there are neither. Output
lines are compared as stored, so a repeated line reads `(3x) …` and the write
summary (`WRITES: put 965 ExplorationModel`) is part of the output too.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

from beam_jobs import refusals

REGEX_PREFIX = 're:'


@dataclasses.dataclass(frozen=True)
class Expected:
    text: str
    pattern: 're.Pattern | None' = None

    def matches(self, line: str) -> bool:
        if self.pattern is None:
            return line == self.text
        return self.pattern.fullmatch(line) is not None


def read(path: str) -> str:
    """The text of an expected output file; one that cannot be read is a
    ValueError naming it."""
    try:
        with open(path, encoding='utf-8') as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise refusals.Refused(f'Cannot read the expected output file {path} ({error}): '
                               'pass a readable UTF-8 text file, one expected line per '
                               'line.') from None


def parse(path: str) -> list[Expected]:
    """The expectations in the file at `path` (see `parse_text`)."""
    return parse_text(read(path), path)


def parse_text(text: str, path: str) -> list[Expected]:
    """The expectations in `text` (the file `path`'s, or a request's copy of
    it); a bad regular expression is a ValueError naming the file and line."""
    lines = text.splitlines()
    expected = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if line.startswith(REGEX_PREFIX):
            try:
                pattern = re.compile(line[len(REGEX_PREFIX):])
            except re.error as error:
                raise refusals.Refused(f'{path}, line {number}: {line[len(REGEX_PREFIX):]!r} '
                                       f'is not a regular expression ({error}): fix it, '
                                       'or drop the re: prefix for exact text.') from None
            expected.append(Expected(line, pattern))
        else:
            expected.append(Expected(line))
    if not expected:
        raise refusals.Refused(f'The expected output file {path} has no expected lines: '
                               'write one line per output line the job must print.')
    return expected


def check(expected: Sequence[Expected], output: Sequence[str]) -> dict:
    """`{'passed', 'missing': [expected lines], 'unexpected': [output lines]}`."""
    missing = [item.text for item in expected
               if not any(item.matches(line) for line in output)]
    unexpected = [line for line in output
                  if not any(item.matches(line) for item in expected)]
    return {'passed': not missing and not unexpected, 'missing': missing,
            'unexpected': unexpected}
