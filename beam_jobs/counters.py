"""A run's counters: which there are, and what each is called in its record.

The framework counts in its own namespace (`beam_jobs`): entities read per
kind, `map` calls, pairs emitted, keys reduced, output lines, failed items,
puts and deletes per kind, and the read's retries (`read_retries`: queries
asked again from their cursor after a retryable failure, shown only when a
run had any). A job's own counters (`increment_counter`) live in
the job's namespace (its class name) and are kept as `JobName.counter`. Beam's
IO counters (RPC successes, throttling) speak of the plumbing, not the job,
and are left out. Whichever runner ran the job, its counters reach the record
under these names.
"""

from __future__ import annotations

from typing import Iterable, Optional

METRICS_NAMESPACE = 'beam_jobs'
# Counters every run reports, zero when nothing incremented them.
STANDARD = ('map_calls', 'pairs_emitted', 'keys_reduced', 'output_lines', 'errors')
ENTITIES_READ = 'entities_read.{kind}'
READ_RETRIES = 'read_retries'


def record_name(namespace: str, name: str, job_name: str) -> Optional[str]:
    """The name a counter has in the run record, or None if it is not kept."""
    if namespace == METRICS_NAMESPACE:
        return name
    if namespace == job_name:
        return f'{job_name}.{name}'
    return None


def initial(kinds: Iterable[str]) -> dict[str, int]:
    """The counters every run of a job over `kinds` shows, at zero."""
    counters = dict.fromkeys(STANDARD, 0)
    for kind in kinds:
        counters[ENTITIES_READ.format(kind=kind)] = 0
    return counters


def from_beam_metrics(result, job_name: str, kinds: Iterable[str]) -> dict[str, int]:
    """A finished pipeline's counters (committed where the runner has them),
    summed over steps, as the record keeps them."""
    counters = initial(kinds)
    for counter in result.metrics().query()['counters']:
        metric = counter.key.metric
        name = record_name(metric.namespace, metric.name, job_name)
        if name is None:
            continue
        value = counter.committed if counter.committed is not None else counter.attempted
        counters[name] = counters.get(name, 0) + int(value or 0)
    return dict(sorted(counters.items()))


def entities_read(counters: dict) -> dict[str, int]:
    """`{kind: n}` of the `entities_read.KIND` counters."""
    prefix = ENTITIES_READ.format(kind='')
    return {name[len(prefix):]: value for name, value in counters.items()
            if name.startswith(prefix)}
