"""A run's output, stored the way the old framework stored it.

Identical lines collapse to `(Nx) line`, error lines come first so a
truncated report still shows every failure it can, then reduce's lines by
key in the order reduce yielded them (see `transforms.ERROR_ORDER`), and the
whole is capped at `MAX_OUTPUT_CHARS` with a visible marker. The pipeline itself writes
the result into as many `BeamJobRunOutput` entities as it needs, so a big
report never meets the Datastore's 1 MiB entity limit and a Dataflow run's
output reaches the run record the same way a local run's does.
"""

from __future__ import annotations

import json
from typing import Iterable, Optional

import apache_beam as beam
from apache_beam.io.gcp.datastore.v1new import types as beam_types

from beam_jobs import datastore
from beam_jobs.transforms import ERROR_PREFIX

MAX_OUTPUT_CHARS = 900_000
# Characters of JSON per entity: at most 4 bytes each in UTF-8, so a piece
# stays well below the 1 MiB entity limit whatever the text.
PIECE_CHARS = 200_000
OUTPUT_KIND = 'BeamJobRunOutput'
TRUNCATED_MARKER = '<TRUNCATED: {lines} more lines ({chars} characters) not stored>'


class _Tally:
    """Distinct lines with their count and their earliest place in the report.

    Bounded: once the distinct lines hold more than twice the cap, only the
    earliest-placed ones within the cap are kept, and the rest are counted
    as dropped. Which lines survive therefore depends only on their order
    keys, not on how the runner bundled them. (A line dropped and seen
    again later restarts its count: only a truncated report can show this.)
    """

    def __init__(self):
        self.lines: dict[str, list] = {}   # line -> [order, count]
        self.chars = 0
        self.dropped_lines = 0
        self.dropped_chars = 0

    def add(self, order, line: str, count: int = 1) -> None:
        seen = self.lines.get(line)
        if seen is None:
            self.lines[line] = [order, count]
            self.chars += len(line)
            if self.chars > 2 * MAX_OUTPUT_CHARS:
                self._trim()
        else:
            seen[0] = min(seen[0], order)
            seen[1] += count

    def _trim(self) -> None:
        kept, self.chars = {}, 0
        for line, (order, count) in sorted(self.lines.items(),
                                           key=lambda item: item[1][0]):
            if self.chars + len(line) <= MAX_OUTPUT_CHARS:
                kept[line] = [order, count]
                self.chars += len(line)
            else:
                self.dropped_lines += count
                self.dropped_chars += len(line) * count
        self.lines = kept

    def merge(self, other: '_Tally') -> None:
        for line, (order, count) in other.lines.items():
            self.add(order, line, count)
        self.dropped_lines += other.dropped_lines
        self.dropped_chars += other.dropped_chars

    def report(self) -> list[str]:
        """The stored form: in order, `(Nx)` for repeats, capped, marked."""
        stored: list[str] = []
        total = 0
        dropped_lines, dropped_chars = self.dropped_lines, self.dropped_chars
        for line, (_, count) in sorted(self.lines.items(),
                                       key=lambda item: item[1][0]):
            text = line if count == 1 else f'({count}x) {line}'
            if total + len(text) <= MAX_OUTPUT_CHARS:
                stored.append(text)
                total += len(text)
            elif not stored:
                # One line longer than the cap: keep what fits of it.
                stored.append(text[:MAX_OUTPUT_CHARS])
                total = MAX_OUTPUT_CHARS
                dropped_chars += len(text) - MAX_OUTPUT_CHARS
            else:
                dropped_lines += count
                dropped_chars += len(text)
        if dropped_lines or dropped_chars:
            stored.append(TRUNCATED_MARKER.format(lines=dropped_lines,
                                                  chars=dropped_chars))
        return stored


class CollapseLinesFn(beam.CombineFn):
    """Combines `(order, line)` pairs into the stored report's lines."""

    def create_accumulator(self):
        return _Tally()

    def add_input(self, accumulator, ordered_line):
        order, line = ordered_line
        accumulator.add(order, line)
        return accumulator

    def merge_accumulators(self, accumulators):
        merged = _Tally()
        for accumulator in accumulators:
            merged.merge(accumulator)
        return merged

    def extract_output(self, accumulator):
        return accumulator.report()


def collapse(lines: Iterable[str]) -> list[str]:
    """The stored form of plain `lines` (errors first, then as given)."""
    tally = _Tally()
    for index, line in enumerate(lines):
        tally.add((0 if line.startswith(ERROR_PREFIX) else 1, '', index), line)
    return tally.report()


def _piece_key(run_id: str, index: int, target: datastore.Target) -> beam_types.Key:
    return beam_types.Key([OUTPUT_KIND, f'{run_id}.{index:05d}'],
                          project=target.project, namespace=target.namespace)


def to_entities(stored: list[str], run_id: str,
                target: datastore.Target) -> list[beam_types.Entity]:
    """The stored lines as JSON text cut into pieces, one entity each."""
    text = json.dumps(stored)
    pieces = [text[start:start + PIECE_CHARS]
              for start in range(0, len(text), PIECE_CHARS)] or ['[]']
    entities = []
    for index, piece in enumerate(pieces):
        entity = beam_types.Entity(_piece_key(run_id, index, target),
                                   exclude_from_indexes=('text',))
        properties = {'run_id': run_id, 'index': index, 'text': piece}
        if index == 0:
            properties.update(piece_count=len(pieces), line_count=len(stored))
        entity.set_properties(properties)
        entities.append(entity)
    return entities


class StoreOutput(beam.PTransform):
    """Collapse, cap and write a run's `(order, line)` pairs to the Datastore."""

    def __init__(self, run_id: str, target: datastore.Target):
        super().__init__()
        self._run_id = run_id
        self._target = target

    def expand(self, lines):
        return (
            lines
            | 'Collapse' >> beam.CombineGlobally(CollapseLinesFn())
            | 'To entities' >> beam.FlatMap(to_entities, self._run_id, self._target)
            | 'Write output' >> datastore.write_entities(self._target.project)
        )


def read(run_id: str, target: datastore.Target) -> Optional[list[str]]:
    """The stored output of a run, or None if its pipeline stored none yet."""
    client = datastore.client(target)
    first = client.get(client.key(OUTPUT_KIND, f'{run_id}.00000'))
    if first is None:
        return None
    keys = [client.key(OUTPUT_KIND, f'{run_id}.{index:05d}')
            for index in range(1, first['piece_count'])]
    rest = {entity.key.name: entity for entity in client.get_multi(keys)}
    missing = [key.name for key in keys if key.name not in rest]
    if missing:
        raise RuntimeError(
            f'Output of run {run_id} is incomplete (missing {missing[:3]}): '
            'the run may still be storing it; read it again shortly.')
    text = first['text'] + ''.join(rest[key.name]['text'] for key in keys)
    return json.loads(text)

