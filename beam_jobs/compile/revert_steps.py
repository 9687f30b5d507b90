"""A revert's steps: a run's before-images put back, unless changed since.

    keys files of the backup → every write, by key → per key its first
    before-image and the last digest written → by the chunk that holds the
    image → look up what is there now (batched) → a write putting the
    before-image back (or deleting a key that was absent), or a conflict

A key whose value now is not what the run wrote was changed since by someone
else: left as it is and named as a conflict, unless `force`. A key already as
it was before is left alone. The writes go through the write mode's sink like
any run's, so a revert keeps before-images of its own and can be reverted.
Lines leave as `(order, line)` for StoreOutput, conflicts first.
"""

from __future__ import annotations

import json

import apache_beam as beam
from apache_beam.io.gcp.datastore.v1new import types as beam_types
from apache_beam.metrics import Metrics

from beam_jobs import counters
from beam_jobs import output_format
from beam_jobs import target as target_lib
from beam_jobs.io import before_images
from beam_jobs.io import write_modes

LOOKUP_BATCH = 500
CONFLICT = 'Conflict'
WRITES_TAG = 'writes'


def conflict_line(key: str, run_id: str, forced: bool) -> str:
    if forced:
        return (f'{CONFLICT}: {key} changed since run {run_id} wrote it; its '
                'before-image was put back anyway (--force).')
    return (f'{CONFLICT}: {key} changed since run {run_id} wrote it; left as it is '
            '(revert --force puts its before-image back).')


def _entries(keys_file: str):
    """A keys file → `(key, (chunk, line, entry fields))` per write."""
    header, entries = before_images.read_chunk_keys(keys_file)
    for line, entry in enumerate(entries):
        yield json.dumps([entry.ident[0], list(entry.ident[1])]), (
            header['chunk'], line, entry.op, entry.image, entry.wrote)


def _first_and_last(keyed) -> tuple:
    """One key's writes → `(chunk of its first, (key, image, last digest))`:
    the first holds the true before-image (a retried bundle's second attempt
    read what the first had written), the last what the run left there."""
    key, writes = keyed
    ordered = sorted(writes, key=lambda write: (write[0], write[1]))
    first, last = ordered[0], ordered[-1]
    return first[0], (key, first[3], last[4])


class _RevertChunkFn(beam.DoFn):
    """`(chunk, [(key, image, wrote)])` → lines, and writes (tagged)."""

    def __init__(self, location: str, run_id: str, target: target_lib.Target,
                 force: bool):
        super().__init__()
        self._location = location
        self._run_id = run_id
        self._target = target
        self._force = force

    def setup(self):
        self._client = target_lib.client(self._target)
        self._counts = {name: Metrics.counter(counters.METRICS_NAMESPACE, name)
                        for name in ('revert_conflicts', 'revert_unchanged',
                                     'revert_restored')}

    def process(self, element):
        chunk_number, items = element
        chunk = before_images.read_chunk(self._location, chunk_number)
        images = before_images.chunk_images(self._location, chunk)
        items = list(items)
        for start in range(0, len(items), LOOKUP_BATCH):
            yield from self._revert(items[start:start + LOOKUP_BATCH], images)

    def _revert(self, items: list, images: dict):
        keys = [self._client.key(*flat, namespace=namespace or None)
                for namespace, flat in (json.loads(key) for key, _, _ in items)]
        now = {before_images.identity(entity.key): entity
               for entity in self._client.get_multi(keys)}
        for (_, image, wrote), key in zip(items, keys):
            ident = before_images.identity(key)
            current = now.get(ident)
            before = (before_images.decode_image(images[image[0]][image[1]], key.project)
                      if image else None)
            current_digest = before_images.digest(current)
            if current_digest == before_images.digest(before):
                self._counts['revert_unchanged'].inc()
                continue
            if current_digest != wrote:
                self._counts['revert_conflicts'].inc()
                yield _ordered(output_format.REPORT_GROUP, conflict_line(
                    before_images.key_text(ident), self._run_id, self._force))
                if not self._force:
                    continue
            self._counts['revert_restored'].inc()
            kind = ident[1][-2]
            previous = current if current is not None else before_images.ABSENT
            if before is None:
                write = ('delete', kind, beam_types.Key.from_client_key(key), previous, None)
            else:
                write = ('put', kind, beam_types.Entity.from_client_entity(before),
                         previous, None)
            yield beam.pvalue.TaggedOutput(WRITES_TAG, write)


def _summary(counted: tuple, write_mode: write_modes.WriteMode) -> tuple:
    (op, kind), count = counted
    return _ordered(output_format.SUMMARY_GROUP, write_mode.summary(op, count, kind))


def _ordered(group: int, line: str) -> tuple:
    return ((group, line, 0), line)


class RevertSteps(beam.PTransform):
    """pbegin → the revert's lines as `(order, line)`; its writes go where
    the write mode says (nowhere in a dry run, which reports them)."""

    def __init__(self, location: str, run_id: str, keys_files: list,
                 target: target_lib.Target, write_mode: write_modes.WriteMode,
                 force: bool):
        super().__init__(label=f'Revert {run_id}')
        self._location = location
        self._run_id = run_id
        self._keys_files = keys_files
        self._target = target
        self._write_mode = write_mode
        self._force = force

    def expand(self, pbegin):
        reverted = (
            pbegin.pipeline
            | 'Keys files' >> beam.Create(self._keys_files)
            | 'Read writes' >> beam.FlatMap(_entries)
            | 'By key' >> beam.GroupByKey()
            | 'First image, last write' >> beam.Map(_first_and_last)
            | 'By chunk' >> beam.GroupByKey()
            | 'Put back' >> beam.ParDo(_RevertChunkFn(
                self._location, self._run_id, self._target, self._force)).with_outputs(
                    WRITES_TAG, main='lines'))
        writes = reverted[WRITES_TAG]
        sink = self._write_mode.sink(self._target)
        if sink is not None:
            _ = writes | 'Write' >> sink
        summary = (writes
                   | 'Op and kind' >> beam.Map(lambda write: (write[0], write[1]))
                   | 'Count writes' >> beam.combiners.Count.PerElement()
                   | 'Describe writes' >> beam.Map(_summary, self._write_mode))
        return (reverted.lines, summary) | 'All lines' >> beam.Flatten()
