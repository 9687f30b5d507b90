"""Where a run reads: the Datastore, an export, an after state, or what a run
left to do (`--retry-failed`). Chosen here only.

Everything after the read (map, shuffle, reduce, failures, output, counters)
gets entities either way and never knows which. What does differ is said
here: the one transform that reads, how a source names itself in a run record
(and in one line of text), the totals its progress can show, and what it can
refuse before a run exists.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Type, Union

import apache_beam as beam
from google.cloud import ndb

from beam_jobs import entities
from beam_jobs import refusals
from beam_jobs import target as target_lib
from beam_jobs.export import after_state
from beam_jobs.export import metadata
from beam_jobs.export import reader
from beam_jobs.io import before_images
from beam_jobs.io import datastore_read
from beam_jobs.io import namespaces as namespaces_lib

Models = Sequence[Type[ndb.Model]]
# The one transform that reads: pbegin → entities (Datastore protobufs or
# Beam entities: the map step takes either).
Read = beam.PTransform[beam.pvalue.PBegin, beam.PCollection[Any]]


def _kinds(models: Models) -> list[str]:
    return [entities.kind_of(model) for model in models]


class DatastoreSource:
    """Every entity of each kind, read live in `shard_count` key ranges each."""

    reads_export = False
    label = 'Read Datastore'

    def check(self, models: Models, namespace: Optional[str]) -> None:
        """Nothing to refuse before the run: the Datastore has every kind."""

    def entity_total(self, models: Models, namespace: Optional[str]) -> Optional[int]:
        return None

    def namespaces(self, requested: Sequence[str],
                   target: target_lib.Target) -> tuple[str, ...]:
        """The namespaces `--namespaces` names (or all), each checked to hold
        entities (namespaces.resolve)."""
        return namespaces_lib.resolve(requested, namespaces_lib.listed(target),
                                      f'the Datastore of {target.describe()}')

    def read(self, models: Models, target: target_lib.Target,
             shard_count: int, namespaces: Optional[Sequence[str]] = None) -> Read:
        return datastore_read.ReadKinds(_kinds(models), target, shard_count,
                                        namespaces=namespaces)

    def describe(self, target: target_lib.Target) -> dict[str, Any]:
        described = {'type': 'datastore', 'project': target.project,
                     'namespace': target.namespace}
        if target.database:
            described['database'] = target.database
        return described

    def totals(self, models: Models, target: target_lib.Target,
               namespaces: Optional[Sequence[str]] = None) -> dict[str, Optional[int]]:
        if namespaces:   # statistics are per namespace: not summed here
            return {kind: None for kind in _kinds(models)}
        return {kind: datastore_read.estimated_count(target, kind)
                for kind in _kinds(models)}

    def reads_text(self, kinds: str, where: str) -> str:
        return f'kinds {kinds} from the Datastore of {where}'


class ExportSource:
    """A managed export, or a rehearsal's after state (its base export with
    the writes applied), read in parallel from its files; keys are put in the
    run's project and namespace."""

    reads_export = True

    def __init__(self, path: str):
        self.path = path
        self.after = after_state.read(path) if after_state.is_after_state(path) else None
        self.label = 'Read after state' if self.after else 'Read export'
        self.info = metadata.read_export_info(after_state.base_export(path))

    def check(self, models: Models, namespace: Optional[str]) -> None:
        """Refuse a kind the export does not hold (nor an after state put)."""
        for kind in _kinds(models):
            if not self.after or not after_state.holds(self.path, kind, namespace):
                self.info.entity_set(kind, namespace)

    def entity_total(self, models: Models, namespace: Optional[str]) -> int:
        """About how many entities the run reads, as the metadata counts
        them: a full export counts only its whole, so then that; a kind only
        an after state holds, none."""
        total = 0
        for kind in _kinds(models):
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

    def namespaces(self, requested: Sequence[str],
                   target: target_lib.Target) -> tuple[str, ...]:
        """The namespaces `--namespaces` names (or all), each checked to be
        in the export; `all` of an export of every namespace reads it whole."""
        if self.after:
            raise refusals.Refused('--namespaces reads a Datastore or an export, not a '
                                   'rehearsal\'s after state: rehearse one namespace at a time.')
        present = self.info.namespaces
        if present is None:     # every namespace was exported: not listed
            if list(requested) == [namespaces_lib.ALL]:
                return (namespaces_lib.ALL,)
            return tuple(requested)
        return namespaces_lib.resolve(requested, present,
                                      f'the export {self.info.metadata_path}')

    def read(self, models: Models, target: target_lib.Target,
             shard_count: int, namespaces: Optional[Sequence[str]] = None) -> Read:
        # Splits follow the files and their 32 KiB blocks, not shard_count.
        namespace: Union[None, str, tuple[str, ...]] = target.namespace
        if namespaces is not None:
            namespace = None if namespaces_lib.ALL in namespaces else tuple(namespaces)
        return reader.ReadExport(self.path, list(models), project=target.project,
                                 namespace=namespace)

    def describe(self, target: target_lib.Target) -> dict[str, Any]:
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

    def totals(self, models: Models, target: target_lib.Target,
               namespaces: Optional[Sequence[str]] = None) -> dict[str, Optional[int]]:
        if self.after:   # how many puts were new entities is not known
            return {kind: None for kind in _kinds(models)}
        if not namespaces:
            return {kind: self.info.entity_count(kind, target.namespace)
                    for kind in _kinds(models)}
        if namespaces_lib.ALL in namespaces:
            return {kind: None for kind in _kinds(models)}
        totals: dict[str, Optional[int]] = {}
        for kind in _kinds(models):
            counts = [self.info.entity_count(kind, space) for space in namespaces]
            known = [count for count in counts if count is not None]
            totals[kind] = sum(known) if len(known) == len(counts) else None
        return totals

    def reads_text(self, kinds: str, where: str) -> str:
        what = 'the after state' if self.after else 'the export'
        return f'{what} {self.path} (kinds {kinds})'


class UnfinishedSource(DatastoreSource):
    """What a run that ended failed or canceled midway did not finish: the
    Datastore read as any run's, less each entity whose writes its backup
    shows all in place (before_images.SkipWrittenFn)."""

    label = 'Read what is left'

    def __init__(self, retry_of: str, backup: str):
        self.retry_of = retry_of
        self.backup = backup

    def read(self, models: Models, target: target_lib.Target,
             shard_count: int, namespaces: Optional[Sequence[str]] = None) -> Read:
        return _SkipWritten(super().read(models, target, shard_count, namespaces),
                            self.backup, target)

    def describe(self, target: target_lib.Target) -> dict[str, Any]:
        return {**super().describe(target), 'retry_of': self.retry_of,
                'retry': 'unfinished'}


class _SkipWritten(beam.PTransform[beam.pvalue.PBegin, beam.PCollection[Any]]):
    def __init__(self, read: Read, backup: str, target: target_lib.Target):
        super().__init__()
        self._read = read
        self._backup = backup
        self._target = target

    # Types in a comment: Beam would take annotations here as its type hints.
    def expand(self, pbegin):  # type: (beam.pvalue.PBegin) -> beam.PCollection[Any]
        left: beam.PCollection[Any] = (
            pbegin
            | 'Read Datastore' >> self._read
            | 'Skip what is written' >> beam.ParDo(
                before_images.SkipWrittenFn(self._backup, self._target)))
        return left


class FailedKeysSource(DatastoreSource):
    """The entities whose map failed in a run that completed (their keys as
    that run kept them, before_images.KeepFailedKeys), looked up by key."""

    label = 'Read failed keys'

    def __init__(self, retry_of: str, keys: Sequence[before_images.Identity]):
        self.retry_of = retry_of
        self.keys = list(keys)

    def read(self, models: Models, target: target_lib.Target,
             shard_count: int, namespaces: Optional[Sequence[str]] = None) -> Read:
        return datastore_read.LookUpKeys(self.keys, target)

    def entity_total(self, models: Models, namespace: Optional[str]) -> int:
        return len(self.keys)

    def describe(self, target: target_lib.Target) -> dict[str, Any]:
        return {**super().describe(target), 'retry_of': self.retry_of,
                'retry': 'failed keys', 'keys': len(self.keys)}

    def totals(self, models: Models, target: target_lib.Target,
               namespaces: Optional[Sequence[str]] = None) -> dict[str, Optional[int]]:
        counts: dict[str, int] = {kind: 0 for kind in _kinds(models)}
        for _, flat in self.keys:
            counts[flat[-2]] = counts.get(flat[-2], 0) + 1
        return {kind: count for kind, count in counts.items()}


# What a run reads (a revert's backup aside: lifecycle/revert.py).
Source = Union[ExportSource, DatastoreSource]


def for_run(export: Optional[str] = None) -> Source:
    """The source a run reads: `export` (an export or after state) if given,
    else the Datastore."""
    return ExportSource(export) if export else DatastoreSource()


def text(described: dict[str, Any]) -> str:
    """Where a run read, in one line, from its record's `source`."""
    if not described:
        return '-'
    if described.get('type') == 'backup':
        return (f'the backup of run {described.get("revert_of")} at '
                f'{described.get("path")} ({described.get("writes")} writes)')
    if described.get('type') == 'export':
        counts = ', '.join(f'{kind} {count}' for kind, count in
                           sorted((described.get('entities') or {}).items()))
        taken = described.get('timestamp') or '?'
        return (f'export {described.get("path")} (taken {taken}'
                f'{"; " + counts if counts else ""}){_namespaces_text(described)}')
    namespace = described.get('namespace')
    retry = (f' ({described["retry"]} of run {described["retry_of"]})'
             if described.get('retry_of') else '')
    database = described.get('database')
    return (f'Datastore of project {described.get("project")}'
            f'{", database " + database if database else ""}'
            f'{", namespace " + namespace if namespace else ""}'
            f'{_namespaces_text(described)}{retry}')


def _namespaces_text(described: dict[str, Any]) -> str:
    spaces = described.get('namespaces')
    if not spaces:
        return ''
    return ', namespaces ' + ', '.join(namespaces_lib.name(n) for n in spaces)
