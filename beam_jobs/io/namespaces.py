"""Several namespaces in one run: which there are, which a run asked for, and
how many entities each gave.

`--namespaces a,b,c` (or `all`) reads every namespace named in the one
pipeline: App Engine MapReduce ran one job per namespace, which its users
found very inconvenient (appengine-mapreduce#92). `''` stands for the default
namespace throughout, as the Datastore's `__namespace__` kind names it.
"""

from __future__ import annotations

import collections
from typing import Any, Iterator, Optional, Sequence

import apache_beam as beam
from google.api_core import exceptions as api_exceptions
from apache_beam.metrics import Metrics

from beam_jobs import counters
from beam_jobs import refusals
from beam_jobs import target as target_lib

ALL = 'all'
DEFAULT_NAME = '(default)'


def parse(text: Optional[str]) -> Optional[list[str]]:
    """`--namespaces a,b,c` → ['a', 'b', 'c']; `all` → [ALL]; None stays None.
    `(default)` (or an empty item) names the default namespace."""
    if text is None:
        return None
    names = [name.strip() for name in str(text).split(',')]
    if [name.lower() for name in names] == [ALL]:
        return [ALL]
    if ALL in names:
        raise refusals.Refused(f'--namespaces {text}: `all` goes alone (every namespace), '
                               'not beside names.')
    chosen = ['' if name == DEFAULT_NAME else name for name in names]
    return list(dict.fromkeys(chosen))


def listed(target: target_lib.Target) -> list[str]:
    """The namespaces of `target`'s database that hold entities ('' the
    default one), from the Datastore's `__namespace__` kind."""
    client = target_lib.client(target_lib.Target(
        target.project, None, target.emulator_host, target.database))
    query = client.query(kind='__namespace__')
    query.keys_only()
    try:
        return sorted(entity.key.name or '' for entity in query.fetch())
    except api_exceptions.InvalidArgument as error:
        # The Firestore emulator (Datastore mode) lists no namespaces.
        raise refusals.Refused(f'{target.describe()} cannot list its namespaces ({error.message}): '
                               'name them instead (--namespaces a,b,c).') from None


def name(namespace: Optional[str]) -> str:
    return namespace or DEFAULT_NAME


def resolve(requested: Sequence[str], present: Sequence[str], where: str) -> tuple[str, ...]:
    """The namespaces a run reads: every one `present` for [ALL], else those
    requested, each of which must be present (a ValueError names the ones
    that are)."""
    if list(requested) == [ALL]:
        if not present:
            raise refusals.Refused(f'--namespaces all: {where} holds no namespaces at all.')
        return tuple(present)
    missing = [namespace for namespace in requested if namespace not in present]
    if missing:
        raise refusals.Refused(
            f'No namespace {", ".join(name(n) for n in missing)} in {where}: the '
            f'namespaces there are {", ".join(name(n) for n in present) or "none"}. '
            'Fix --namespaces (or pass --namespaces all).')
    return tuple(requested)


NAMESPACE_READ = 'namespace_read.{namespace}'


def read_counts(counted: dict[str, Any]) -> dict[str, int]:
    """`{namespace name: n}` of a record's `namespace_read.NS` counters."""
    prefix = NAMESPACE_READ.format(namespace='')
    return {found[len(prefix):]: value for found, value in counted.items()
            if found.startswith(prefix)}


class CountByNamespace(beam.DoFn):
    """Entities (protobufs from a Datastore read, Beam entities from an
    export) pass through unchanged, counted per namespace
    (`namespace_read.NS` counters, `(default)` for the default one),
    handed to Beam once per bundle."""

    def start_bundle(self) -> None:
        self._counts: collections.Counter[str] = collections.Counter()

    # Types in a comment: Beam would take annotations here as its type hints.
    def process(self, entity):  # type: (Any) -> Iterator[Any]
        key = entity.key
        partition = getattr(key, 'partition_id', None)
        namespace = partition.namespace_id if partition is not None else key.namespace
        self._counts[namespace or ''] += 1
        yield entity

    def finish_bundle(self) -> None:
        for namespace, count in self._counts.items():
            Metrics.counter(counters.METRICS_NAMESPACE, NAMESPACE_READ.format(
                namespace=name(namespace))).inc(count)
        self._counts.clear()
