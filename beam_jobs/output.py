"""A run's output, stored the way the old framework stored it.

Identical lines collapse to `(Nx) line` in first-seen order, error lines
first so a truncated report still shows every failure it can, and the whole is
capped at `MAX_OUTPUT_CHARS` with a visible marker. The pipeline itself writes
the result into as many `BeamJobRunOutput` entities as it needs, so a big
report never meets the Datastore's 1 MiB entity limit and a Dataflow run's
output reaches the run record the same way a local run's does.
"""

from __future__ import annotations

import json
from typing import Iterable, Optional

import apache_beam as beam
from apache_beam.io.gcp.datastore.v1new import datastoreio
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
    """Distinct lines with counts, in first-seen order, within a budget."""

    def __init__(self):
        self.counts: dict[str, int] = {}
        self.chars = 0
        self.dropped_lines = 0
        self.dropped_chars = 0

    def add(self, line: str, count: int = 1) -> None:
        if line in self.counts:
            self.counts[line] += count
        elif self.chars + len(line) <= MAX_OUTPUT_CHARS:
            self.counts[line] = count
            self.chars += len(line)
        else:
            # Keeping every distinct line would hold an unbounded report in
            # one worker's memory; past the cap only the tally is kept.
            self.dropped_lines += count
            self.dropped_chars += len(line) * count

    def merge(self, other: '_Tally') -> None:
        for line, count in other.counts.items():
            self.add(line, count)
        self.dropped_lines += other.dropped_lines
        self.dropped_chars += other.dropped_chars


class CollapseLinesFn(beam.CombineFn):
    """Combines output lines into the stored report: (errors, lines) tallies."""

    def create_accumulator(self):
        return _Tally(), _Tally()

    def add_input(self, accumulator, line):
        errors, lines = accumulator
        (errors if line.startswith(ERROR_PREFIX) else lines).add(line)
        return accumulator

    def merge_accumulators(self, accumulators):
        errors, lines = self.create_accumulator()
        for other_errors, other_lines in accumulators:
            errors.merge(other_errors)
            lines.merge(other_lines)
        return errors, lines

    def extract_output(self, accumulator):
        return collapse_tallies(*accumulator)


def collapse_tallies(errors: _Tally, lines: _Tally) -> list[str]:
    stored: list[str] = []
    total = 0
    dropped_lines = errors.dropped_lines + lines.dropped_lines
    dropped_chars = errors.dropped_chars + lines.dropped_chars
    for tally in (errors, lines):
        for line, count in tally.counts.items():
            text = line if count == 1 else f'({count}x) {line}'
            if total + len(text) > MAX_OUTPUT_CHARS:
                if not stored:
                    # One line longer than the cap: keep what fits of it.
                    stored.append(text[:MAX_OUTPUT_CHARS])
                    dropped_chars += len(text) - MAX_OUTPUT_CHARS
                else:
                    dropped_lines += 1
                    dropped_chars += len(text)
                continue
            stored.append(text)
            total += len(text)
    if dropped_lines or dropped_chars:
        stored.append(TRUNCATED_MARKER.format(lines=dropped_lines,
                                              chars=dropped_chars))
    return stored


def collapse(lines: Iterable[str]) -> list[str]:
    """The stored form of `lines`, computed in one process (tests, tools)."""
    combine = CollapseLinesFn()
    accumulator = combine.create_accumulator()
    for line in lines:
        accumulator = combine.add_input(accumulator, line)
    return combine.extract_output(accumulator)


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
    """Collapse, cap and write a run's output lines to the Datastore."""

    def __init__(self, run_id: str, target: datastore.Target):
        super().__init__()
        self._run_id = run_id
        self._target = target

    def expand(self, lines):
        return (
            lines
            | 'Collapse' >> beam.CombineGlobally(CollapseLinesFn())
            | 'To entities' >> beam.FlatMap(to_entities, self._run_id, self._target)
            | 'Write output' >> datastoreio.WriteToDatastore(
                self._target.project,
                throttle_rampup=not datastore.is_emulator())
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

