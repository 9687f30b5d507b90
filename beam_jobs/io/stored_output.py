"""Where a run's output is kept: `BeamJobRunOutput` entities, as many as it needs.

The pipeline writes the report (output_format.StoredOutput) itself, so a
Dataflow run's output reaches the Datastore the same way a local run's does.
The JSON text of `{"lines": [...], "kinds": "FRRS…"}` is cut into pieces of
`PIECE_CHARS`, one entity each, so a big report never meets the Datastore's
1 MiB entity limit. The first piece also carries the counts (lines, failed
items, error lines), so following a run reads one entity, not the report.
Output stored before kinds were kept (a bare JSON list of lines) still reads:
its lines are classified by their text.
"""

from __future__ import annotations

import json
from typing import Optional

from apache_beam.io.gcp.datastore.v1new import types as beam_types
from google.cloud import datastore

from beam_jobs import output_format
from beam_jobs import target as target_lib

OUTPUT_KIND = 'BeamJobRunOutput'
# Characters of JSON per entity: at most 4 bytes each in UTF-8, so a piece
# stays well below the 1 MiB entity limit whatever the text.
PIECE_CHARS = 200_000
FORMAT = 2


def _piece_name(run_id: str, index: int) -> str:
    return f'{run_id}.{index:05d}'


def to_entities(stored: output_format.StoredOutput, run_id: str,
                target: target_lib.Target) -> list[beam_types.Entity]:
    """The stored report as JSON text cut into pieces, one entity each."""
    text = json.dumps({'lines': stored.lines, 'kinds': stored.kinds})
    pieces = [text[start:start + PIECE_CHARS]
              for start in range(0, len(text), PIECE_CHARS)]
    entities = []
    for index, piece in enumerate(pieces):
        key = beam_types.Key([OUTPUT_KIND, _piece_name(run_id, index)],
                             project=target.project, namespace=target.namespace)
        entity = beam_types.Entity(key, exclude_from_indexes=('text',))
        properties = {'run_id': run_id, 'index': index, 'text': piece}
        if index == 0:
            properties.update(
                piece_count=len(pieces), line_count=len(stored.lines),
                format=FORMAT, output_lines=stored.counts.lines,
                failed_items=stored.counts.failed_items,
                error_lines=stored.counts.error_lines)
        entity.set_properties(properties)
        entities.append(entity)
    return entities


def _first_piece(client: datastore.Client, run_id: str) -> Optional[datastore.Entity]:
    key = client.key(OUTPUT_KIND, _piece_name(run_id, 0))
    first: Optional[datastore.Entity] = client.get(key)
    return first


def read(run_id: str, target: target_lib.Target) -> Optional[output_format.StoredOutput]:
    """The stored report of a run, or None if its pipeline stored none yet."""
    client = target_lib.client(target)
    first = _first_piece(client, run_id)
    if first is None:
        return None
    keys = [client.key(OUTPUT_KIND, _piece_name(run_id, index))
            for index in range(1, first['piece_count'])]
    rest = {entity.key.name: entity for entity in client.get_multi(keys)}
    missing = [key.name for key in keys if key.name not in rest]
    if missing:
        raise RuntimeError(
            f'Output of run {run_id} is incomplete (missing {missing[:3]}): '
            'the run may still be storing it; read it again shortly.')
    data = json.loads(first['text'] + ''.join(rest[key.name]['text'] for key in keys))
    if isinstance(data, list):      # stored before kinds were kept
        return output_format.StoredOutput.of_lines(data)
    return output_format.StoredOutput(data['lines'], data['kinds'],
                                      _counts(first))


def _counts(first: datastore.Entity) -> output_format.Counts:
    return output_format.Counts(int(first.get('output_lines') or 0),
                                int(first.get('failed_items') or 0),
                                int(first.get('error_lines') or 0))


def read_counts(run_id: str, target: target_lib.Target) -> Optional[output_format.Counts]:
    """A run's output counts, from the first piece alone (None: none stored)."""
    client = target_lib.client(target)
    first = _first_piece(client, run_id)
    if first is None:
        return None
    if first.get('format') != FORMAT:
        stored = read(run_id, target)
        return stored.counts if stored else None
    return _counts(first)
