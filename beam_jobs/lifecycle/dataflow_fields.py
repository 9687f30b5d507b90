"""What the Dataflow API says about a job, turned into a run record's fields.

The poll (dataflow.py) asks the API (dataflow_api.py); this module only
turns the answers into what the record keeps, and run_text.py says those
fields for people.

- **Counters**: the job's metrics of origin `user` in the framework's
  namespace or the job's (counters.py names them as a local run's are), summed
  over steps: the attempted values (`context.tentative`) while the job runs,
  the committed ones once it has ended.
- **Progress**: entities read per kind (those counters) against the totals
  known at submission, in the shape a local run reports (progress.py).
- **The cause of a failure**: the job's first error messages, each cut to what
  a person needs: the exception line, the step it ran in, and the item when
  the framework's failure line names one.
- **Cost and size**: the resources it reports while it runs (vCPU time
  `TotalVcpuTime`, memory `TotalMemoryUsage`, shuffle
  `TotalShuffleDataProcessed`), priced at the rates its budget was made with,
  then the most workers the autoscaler ran (from its messages) and the
  elapsed time.
"""

from __future__ import annotations

import re
import time
from typing import Any, Iterable, Mapping, Optional, TypedDict

from beam_jobs import counters as counters_lib
from beam_jobs import output_format
from beam_jobs.lifecycle import dataflow_api
from beam_jobs.lifecycle import estimate as estimate_lib
from beam_jobs.records import runs

USER_ORIGIN = 'user'
SERVICE_METRIC_VCPU_TIME = 'TotalVcpuTime'
# The service's resource metrics and how the record keeps each: vCPU
# seconds; memory in MB-seconds, kept as GB-seconds; shuffle in bytes, as GB.
_RESOURCES = {SERVICE_METRIC_VCPU_TIME: ('vcpu_seconds', 1.0),
              'TotalMemoryUsage': ('memory_gb_seconds', 1 / 1024),
              'TotalShuffleDataProcessed': ('shuffle_gb', 1 / 1024 ** 3)}
MAX_FAILURE_MESSAGES = 3
_STEP = re.compile(r"\[while running '([^']+)'\]")
_EXCEPTION = re.compile(r'^(?:[\w.]+\.)?\w*(?:Error|Exception|Exit|Interrupt)\b.*', re.M)
_WORKERS = re.compile(r'(?:number of workers to|worker pool (?:from \d+ )?to|'
                      r'Starting|Resized worker pool to) (\d+)(?: workers)?', re.I)


class Failure(TypedDict):
    """One error message of a failed job, trimmed (`failure`)."""

    exception: str
    step: Optional[str]
    item: Optional[str]
    at_msec: Optional[int]


def record_fields(record: runs.RunRecord, metrics: list[dataflow_api.Metric],
                  stages: Optional[list[dict[str, str]]], committed: bool) -> dict[str, Any]:
    """The fields a poll sets on the record: counters (committed once the job
    ended), progress, usage, the stages where the service gives them, and no
    `follow_error` (the API answered)."""
    totals = (record.progress or {}).get('total') or {}
    counted = counters(metrics, record.job_name, list(totals), committed=committed)
    fields: dict[str, Any] = {'counters': counted, 'counters_attempted': not committed,
                              'progress': progress(counted, totals),
                              'usage': usage(record, metrics), 'follow_error': None}
    if stages is not None:
        fields['stages'] = stages
    return fields


def usage(record: runs.RunRecord, metrics: list[dataflow_api.Metric]) -> dict[str, float]:
    """The resources the job reported so far, priced at the rates its
    budget (or its estimate) was made with."""
    used = resources(metrics)
    rates = (record.dataflow.budget or {}).get('rates')
    cost = estimate_lib.cost_of(used, rates) if rates else None
    if cost is not None:
        used['cost_usd'] = round(cost, 6)
    return used


def counters(metrics: Iterable[dataflow_api.Metric], job_name: str,
             kinds: Iterable[str], committed: bool) -> dict[str, int]:
    """The record's counters from the job's metrics: attempted values while it
    runs, committed ones once it ended."""
    found = counters_lib.initial(kinds)
    for metric in metrics:
        if metric.origin != USER_ORIGIN or metric.tentative == committed:
            continue
        if not isinstance(metric.scalar, (int, float)) or isinstance(metric.scalar, bool):
            continue
        name = counters_lib.record_name(metric.context.get('namespace', ''), metric.name,
                                        job_name)
        if name is not None:
            found[name] = found.get(name, 0) + int(metric.scalar)
    return dict(sorted(found.items()))


def progress(counted: dict[str, int],
             totals: Mapping[str, Optional[int]]) -> dict[str, Any]:
    """Entities read per kind against the totals known at submission."""
    read = counters_lib.entities_read(counted)
    return {'read': {kind: read.get(kind, 0) for kind in totals} | read,
            'total': dict(totals), 'updated_msec': int(time.time() * 1000)}


def resources(metrics: Iterable[dataflow_api.Metric]) -> dict[str, float]:
    """What the job reported using so far: `{'vcpu_seconds',
    'memory_gb_seconds', 'shuffle_gb'}`, each only once reported."""
    found: dict[str, float] = {}
    for metric in metrics:
        if metric.name in _RESOURCES and metric.origin != USER_ORIGIN and isinstance(
                metric.scalar, (int, float)) and not isinstance(metric.scalar, bool):
            name, scale = _RESOURCES[metric.name]
            found[name] = round(float(metric.scalar) * scale, 6)
    return found


def most_workers(messages: Iterable[dataflow_api.Message]) -> Optional[int]:
    """The most workers the job ran, from the autoscaler's messages."""
    counts = [int(found) for message in messages
              for found in _WORKERS.findall(message.text)]
    return max(counts) if counts else None


def failure(message: dataflow_api.Message) -> Failure:
    """One error message, cut to `{'exception', 'step', 'item'}`: the
    traceback's last exception line, the step Beam names, and the item a
    framework failure line names."""
    text = message.text or ''
    step = _STEP.search(text)
    exceptions = _EXCEPTION.findall(text)
    exception = (exceptions[-1] if exceptions else text.strip().splitlines()[-1:] or [''])
    exception = exception if isinstance(exception, str) else exception[0]
    exception = _STEP.sub('', exception).strip()
    item = None
    for line in text.splitlines():
        found = output_format.failed_item(re.sub(r'^.*?(ERROR in )', r'\1', line.strip()))
        if found:
            item = f'{found["kind"]}/{found["key"]}' if found['kind'] else found['key']
            break
    return {'exception': exception[:500], 'step': step.group(1) if step else None,
            'item': item, 'at_msec': message.msec}


def failures(messages: Iterable[dataflow_api.Message]) -> list[Failure]:
    """The first error messages, trimmed, without repeats."""
    kept: list[Failure] = []
    seen: set[tuple[str, Optional[str]]] = set()
    for message in messages:
        trimmed = failure(message)
        key = (trimmed['exception'], trimmed['step'])
        if key in seen:
            continue
        seen.add(key)
        kept.append(trimmed)
        if len(kept) == MAX_FAILURE_MESSAGES:
            break
    return kept


def failure_sentence(trimmed: list[Failure], console_url: Optional[str]) -> str:
    """The run's `error` for a failed job: the cause, then where the logs are."""
    logs = f'its logs are in the console ({console_url})' if console_url else 'see its logs'
    if not trimmed:
        return f'The Dataflow job failed, giving no error message: {logs}; fix the cause and rerun.'
    first = trimmed[0]
    where = []
    if first['step']:
        where.append(f"in step '{first['step']}'")
    if first['item']:
        where.append(f"on {first['item']}")
    more = (f' ({len(trimmed) - 1} more error message(s) in the record)'
            if len(trimmed) > 1 else '')
    return (f'The Dataflow job failed{" " + " ".join(where) if where else ""}: '
            f'{first["exception"]}{more}. Fix the cause and rerun; {logs}.')
