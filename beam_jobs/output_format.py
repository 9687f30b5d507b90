"""A run's output lines: made here, told apart here, and nowhere else.

An output line is one of five kinds:

    FAILURE    the framework's line for an item that failed:
               `ERROR in map for ExplorationModel/exp-1: ValueError: … (at f.py:3)`
    ERROR      a line the job's own reduce yielded that reports an error: it
               starts with `ERROR` after an opening `['` or `("` (a
               `('ERROR: …', ids)` pair reads `['ERROR: …', [...]]`)
    REPORT     any other line reduce yielded
    SUMMARY    what happened to the writes: `WRITES: put 965 ExplorationModel`
    TRUNCATED  the marker of a report cut at its size limit

The stored report (`Tally`): identical lines collapse to `(Nx) line`;
failures come first, then reduce's lines by key in the order reduce yielded
them, then the write summary; the whole is capped at `MAX_OUTPUT_CHARS` with
a visible marker. Every line is classified once, when the report is made, and
the kinds are stored beside the lines (`StoredOutput`), so no reader parses
text to find the failures; `classify` reads output stored before kinds were.
"""

from __future__ import annotations

import dataclasses
import json
import re
import traceback
from typing import Any, Iterable, Optional, Sequence

FAILURE, ERROR, REPORT, SUMMARY, TRUNCATED = 'F', 'E', 'R', 'S', 'T'
ERROR_KINDS = frozenset({FAILURE, ERROR})
ERROR_PREFIX = 'ERROR'
MAX_OUTPUT_CHARS = 900_000
# Where a line goes in the stored report: its group, then (for reduce's
# lines) its key and its place among that key's lines. Carried with each
# line so the report is the same however the runner split the work.
FAILURE_GROUP, REPORT_GROUP, SUMMARY_GROUP = 0, 1, 2

_COUNTED = re.compile(r'\((\d+)x\) (.*)', re.DOTALL)
_TRUNCATED = re.compile(r'<TRUNCATED: (\d+) more lines \((\d+) characters\) not stored>')
_TRUNCATED_TEXT = '<TRUNCATED: {lines} more lines ({chars} characters) not stored>'
_FAILURE = re.compile(r'ERROR in (\w+) for (.+?): (.*)', re.DOTALL)
_SUMMARY_PREFIXES = ('WRITES: ', 'DRY RUN: would ')
# How a run's writes are summed up, by what became of them (io/write_modes.py).
_WRITE_SUMMARIES = {
    'apply': 'WRITES: {verb} {count} {kind}',
    'after_state': 'WRITES: {verb} {count} {kind}',   # as the real run will say
    'dry_run': 'DRY RUN: would {verb} {count} {kind} (nothing was written)',
    'report_only': 'DRY RUN: would {verb} {count} {kind} (a run over an export '
                   'writes to no Datastore)',
}


# Making lines.

def output_line(value: Any) -> str:
    """What the old framework stored for each value `reduce` yielded: its
    JSON round trip, then `str()`, so a tuple reads back as a list and a
    string is unchanged. Values made of strings, numbers, lists, tuples and
    string-keyed dicts (nearly every report) take a shortcut with the same
    result that never builds the JSON text: for a reduce that yields one key's
    millions of values, that text was the largest thing in memory."""
    if type(value) is str:  # pylint: disable=unidiomatic-typecheck
        return value
    plain = _as_json_would(value)
    if plain is not _NOT_PLAIN:
        return str(plain)
    return str(json.loads(json.dumps(value)))


_NOT_PLAIN = object()
_SCALARS = (str, int, bool, type(None))


def _as_json_would(value: Any, depth: int = 0) -> Any:
    """`json.loads(json.dumps(value))` for plain values, else _NOT_PLAIN."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if depth > 50:
        return _NOT_PLAIN
    if kind is list or kind is tuple:
        items = []
        for item in value:
            if type(item) is str:  # pylint: disable=unidiomatic-typecheck
                items.append(item)
                continue
            converted = _as_json_would(item, depth + 1)
            if converted is _NOT_PLAIN:
                return _NOT_PLAIN
            items.append(converted)
        return items
    if kind is dict:
        converted = {}
        for key, item in value.items():
            if type(key) is not str:  # pylint: disable=unidiomatic-typecheck
                return _NOT_PLAIN   # JSON turns other keys into strings
            item = _as_json_would(item, depth + 1)
            if item is _NOT_PLAIN:
                return _NOT_PLAIN
            converted[key] = item
        return converted
    return _NOT_PLAIN   # floats (nan, -0.0), subclasses: the JSON way


def failure_line(step: str, where: str, error: BaseException) -> str:
    """One line naming the failed item and the reason:
    `ERROR in map for Kind/id: ValueError: … (at file.py:12)`."""
    frame = traceback.extract_tb(error.__traceback__)[-1:] or None
    at = f' (at {frame[0].filename.rsplit("/", 1)[-1]}:{frame[0].lineno})' if frame else ''
    return f'{ERROR_PREFIX} in {step} for {where}: {type(error).__name__}: {error}{at}'


def write_summary(mode: str, op: str, count: int, kind: str) -> str:
    """`WRITES: put 965 ExplorationModel`, or what a dry run says instead;
    `mode` is a WriteMode's name."""
    verb = {'put': 'put', 'delete': 'delete'}[op]
    return _WRITE_SUMMARIES[mode].format(verb=verb, count=count, kind=kind)


def counted(line: str, count: int) -> str:
    return line if count == 1 else f'({count}x) {line}'


def truncated_marker(lines: int, chars: int) -> str:
    return _TRUNCATED_TEXT.format(lines=lines, chars=chars)


# Reading lines.

def uncounted(line: str) -> tuple[int, str]:
    """`(N, line)` of a stored `(Nx) line`; `(1, line)` of any other."""
    found = _COUNTED.fullmatch(line)
    return (int(found.group(1)), found.group(2)) if found else (1, line)


def is_error_text(text: str) -> bool:
    """A reduce line that reports an error: `ERROR` first, after an opening
    `['`, `["`, `('` or `("` (the line of a `(key, value)` pair)."""
    return text.lstrip('[(\'"').startswith(ERROR_PREFIX)


def kind_in_group(group: int, text: str) -> str:
    """The kind of a line the pipeline made in `group` (see the module doc)."""
    if group == FAILURE_GROUP:
        return FAILURE
    if group == SUMMARY_GROUP:
        return SUMMARY
    return ERROR if is_error_text(text) else REPORT


def classify(line: str) -> str:
    """The kind of a stored line, from its text alone: for output stored
    before kinds were kept (and for plain lists of lines)."""
    if _TRUNCATED.fullmatch(line):
        return TRUNCATED
    _, text = uncounted(line)
    if _FAILURE.fullmatch(text):
        return FAILURE
    if text.startswith(_SUMMARY_PREFIXES):
        return SUMMARY
    return ERROR if is_error_text(text) else REPORT


def failed_item(line: str) -> Optional[dict]:
    """What a failure line names: `{'step', 'kind', 'key', 'reason', 'line'}`."""
    _, text = uncounted(line)
    found = _FAILURE.fullmatch(text)
    if not found:
        return None
    step, where, reason = found.groups()
    kind, _, key = where.partition('/') if '/' in where else ('', '', where)
    return {'step': step, 'kind': kind, 'key': key, 'reason': reason, 'line': line}


@dataclasses.dataclass(frozen=True)
class Counts:
    """How many lines of each kind a run output, repeats counted."""

    lines: int = 0           # every line, failures and summary included
    failed_items: int = 0
    error_lines: int = 0     # the job's own error lines

    def as_record_fields(self) -> dict:
        return {'output_line_count': self.lines, 'error_count': self.failed_items,
                'error_line_count': self.error_lines}


@dataclasses.dataclass(frozen=True)
class StoredOutput:
    """A run's stored report: its lines, each line's kind, and the counts."""

    lines: list
    kinds: str
    counts: Counts

    @classmethod
    def of_lines(cls, lines: Sequence[str]) -> 'StoredOutput':
        """Lines stored without their kinds: classified by their text."""
        kinds = ''.join(classify(line) for line in lines)
        totals = {FAILURE: 0, ERROR: 0}
        total = 0
        for line, kind in zip(lines, kinds):
            if kind == TRUNCATED:
                matched = _TRUNCATED.fullmatch(line)
                total += int(matched.group(1)) if matched else 0
                continue
            count = uncounted(line)[0]
            total += count
            if kind in totals:
                totals[kind] += count
        return cls(list(lines), kinds,
                   Counts(total, totals[FAILURE], totals[ERROR]))

    def of_kinds(self, kinds: Iterable[str]) -> list[str]:
        wanted = set(kinds)
        return [line for line, kind in zip(self.lines, self.kinds) if kind in wanted]

    @property
    def failure_lines(self) -> list[str]:
        return self.of_kinds(FAILURE)

    @property
    def error_lines(self) -> list[str]:
        """Failures and the job's own error lines, in report order."""
        return self.of_kinds(ERROR_KINDS)

    @property
    def truncated(self) -> bool:
        return TRUNCATED in self.kinds

    def entries(self) -> list[dict]:
        return [{'text': line, 'kind': kind}
                for line, kind in zip(self.lines, self.kinds)]


class Tally:
    """Distinct lines with their count, kind and earliest place in the report.

    Bounded: once the distinct lines hold more than twice the cap, only the
    earliest-placed ones within the cap are kept, and the rest are counted
    as dropped. Which lines survive therefore depends only on their order
    keys, not on how the runner bundled them. (A line dropped and seen again
    later restarts its count: only a truncated report can show this.) The
    counts by kind include dropped lines.
    """

    def __init__(self):
        self.lines: dict[str, list] = {}   # line -> [order, count, kind]
        self.chars = 0
        self.dropped_lines = 0
        self.dropped_chars = 0
        self.totals = {FAILURE: 0, ERROR: 0, REPORT: 0, SUMMARY: 0}

    def add(self, order: tuple, line: str, count: int = 1,
            kind: Optional[str] = None) -> None:
        seen = self.lines.get(line)
        if seen is None:
            kind = kind or kind_in_group(order[0], line)
            self.lines[line] = [order, count, kind]
            self.chars += len(line)
            if self.chars > 2 * MAX_OUTPUT_CHARS:
                self._trim()
        else:
            seen[0] = min(seen[0], order)
            seen[1] += count
            kind = seen[2]
        self.totals[kind] += count

    def _trim(self) -> None:
        kept, self.chars = {}, 0
        for line, entry in sorted(self.lines.items(), key=lambda item: item[1][0]):
            if self.chars + len(line) <= MAX_OUTPUT_CHARS:
                kept[line] = entry
                self.chars += len(line)
            else:
                self.dropped_lines += entry[1]
                self.dropped_chars += len(line) * entry[1]
        self.lines = kept

    def merge(self, other: 'Tally') -> None:
        for line, (order, count, kind) in other.lines.items():
            seen = self.lines.get(line)
            if seen is None:
                self.lines[line] = [order, count, kind]
                self.chars += len(line)
                if self.chars > 2 * MAX_OUTPUT_CHARS:
                    self._trim()
            else:
                seen[0] = min(seen[0], order)
                seen[1] += count
        self.dropped_lines += other.dropped_lines
        self.dropped_chars += other.dropped_chars
        for kind, count in other.totals.items():
            self.totals[kind] += count

    def report(self) -> StoredOutput:
        """The stored form: in order, `(Nx)` for repeats, capped, marked."""
        stored: list[str] = []
        kinds: list[str] = []
        total = 0
        dropped_lines, dropped_chars = self.dropped_lines, self.dropped_chars
        for line, (_, count, kind) in sorted(self.lines.items(),
                                             key=lambda item: item[1][0]):
            text = counted(line, count)
            if total + len(text) <= MAX_OUTPUT_CHARS:
                stored.append(text)
                kinds.append(kind)
                total += len(text)
            elif not stored:
                # One line longer than the cap: keep what fits of it.
                stored.append(text[:MAX_OUTPUT_CHARS])
                kinds.append(kind)
                total = MAX_OUTPUT_CHARS
                dropped_chars += len(text) - MAX_OUTPUT_CHARS
            else:
                dropped_lines += count
                dropped_chars += len(text)
        if dropped_lines or dropped_chars:
            stored.append(truncated_marker(dropped_lines, dropped_chars))
            kinds.append(TRUNCATED)
        counts = Counts(sum(self.totals.values()), self.totals[FAILURE],
                        self.totals[ERROR])
        return StoredOutput(stored, ''.join(kinds), counts)


def collapse(lines: Iterable[str]) -> StoredOutput:
    """The stored form of plain `lines`: failures first, then as given."""
    tally = Tally()
    for index, line in enumerate(lines):
        kind = classify(line)
        group = FAILURE_GROUP if kind == FAILURE else REPORT_GROUP
        tally.add((group, '', index), line, kind=kind)
    return tally.report()
