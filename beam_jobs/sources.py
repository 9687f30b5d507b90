"""Where a run reads: the Datastore, or a managed export. Chosen here only.

Everything after the read (map, shuffle, reduce, failures, output,
counters) gets the same Beam entities either way and never knows which. What
does differ is said here too: how a source names itself in a run record, the
totals its progress can show, and whether the run's writes may reach a
Datastore (a run over an export never writes to one: its puts and deletes
are reported, as in a dry run).
"""

from __future__ import annotations

from typing import Optional, Sequence, Type

import apache_beam as beam
from google.cloud import ndb

from beam_jobs import datastore
from beam_jobs import export as export_lib
from beam_jobs.export import after_state


class DatastoreSource:
    """Every entity of each kind, read live in `shard_count` key ranges."""

    writes_to_datastore = True

    def reads(self, models: Sequence[Type[ndb.Model]], target: datastore.Target,
              shard_count: int) -> dict[str, beam.PTransform]:
        return {f'Read {datastore.kind_of(model)}': datastore.ReadKind(
                    model, target, shard_count) for model in models}

    def describe(self, target: datastore.Target) -> dict:
        return {'type': 'datastore', 'project': target.project,
                'namespace': target.namespace}

    def totals(self, models: Sequence[Type[ndb.Model]],
               target: datastore.Target) -> dict[str, Optional[int]]:
        return {datastore.kind_of(model): datastore.estimated_count(
                    target, datastore.kind_of(model)) for model in models}


class ExportSource:
    """A managed export (or a rehearsal's after state: its base export with
    the writes applied), read in parallel from its files; its keys are put in
    the run's project and namespace."""

    writes_to_datastore = False

    def __init__(self, path: str):
        self.path = path
        # An after state reads as its base with its writes applied.
        self.after = after_state.read(path) if after_state.is_after_state(path) else None
        self.info = export_lib.read_export_info(after_state.base_export(path))

    def check(self, models: Sequence[Type[ndb.Model]],
              namespace: Optional[str]) -> None:
        """Refuse, before a run exists, a kind the export does not hold (nor
        an after state put)."""
        for model in models:
            kind = datastore.kind_of(model)
            if not self.after or not after_state.holds(self.path, kind, namespace):
                self.info.entity_set(kind, namespace)

    def entity_total(self, models: Sequence[Type[ndb.Model]],
                     namespace: Optional[str]) -> int:
        """About how many entities the run reads, as the metadata counts
        them: a full export counts only its whole, so then that; a kind only
        an after state holds, none."""
        total = 0
        for model in models:
            kind = datastore.kind_of(model)
            if self.after and after_state.holds(self.path, kind, namespace):
                try:
                    self.info.entity_set(kind, namespace)
                except ValueError:
                    continue
            count = self.info.entity_count(kind, namespace)
            if count is None:
                return sum(s.num_entities for s in self.info.entity_sets)
            total += count
        return total

    def reads(self, models: Sequence[Type[ndb.Model]], target: datastore.Target,
              shard_count: int) -> dict[str, beam.PTransform]:
        # Splits follow the files and their 32 KiB blocks, not shard_count.
        return {'Read export': export_lib.ReadExport(
            self.path, list(models), project=target.project,
            namespace=target.namespace)}

    def describe(self, target: datastore.Target) -> dict:
        counts = {}
        for entity_set in self.info.entity_sets:
            if entity_set.kind is not None and entity_set.namespace in (
                    None, target.namespace or ''):
                counts[entity_set.kind] = entity_set.num_entities
        described = {'type': 'export', 'path': self.info.metadata_path,
                     'timestamp': self.info.timestamp, 'entities': counts,
                     'total_entities': sum(s.num_entities for s in self.info.entity_sets)}
        if self.after:
            # The counts are the export's; the after state's writes change them.
            described.update(path=self.after.folder, after_state_of=self.after.base,
                             writes=self.after.writes, export=self.info.metadata_path)
        return described

    def totals(self, models: Sequence[Type[ndb.Model]],
               target: datastore.Target) -> dict[str, Optional[int]]:
        if self.after:   # how many puts were new entities is not known
            return {datastore.kind_of(model): None for model in models}
        return {datastore.kind_of(model): self.info.entity_count(
                    datastore.kind_of(model), target.namespace)
                for model in models}


def for_run(export: Optional[str] = None):
    """The source a run reads: `export` if given, else the Datastore."""
    return ExportSource(export) if export else DatastoreSource()
