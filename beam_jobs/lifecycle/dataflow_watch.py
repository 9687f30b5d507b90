"""What the Dataflow API says about a job, as a run record keeps it.

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
  `TotalShuffleDataProcessed`), then the most workers the autoscaler ran
  (from its messages) and the elapsed time.
"""

from __future__ import annotations

import re
import time
from typing import Iterable, Optional

from beam_jobs import counters as counters_lib
from beam_jobs import output_format
from beam_jobs import readable
from beam_jobs.lifecycle import dataflow_api

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


def progress(counted: dict, totals: dict) -> dict:
    """Entities read per kind against the totals known at submission."""
    read = counters_lib.entities_read(counted)
    return {'read': {kind: read.get(kind, 0) for kind in totals} | read,
            'total': dict(totals), 'updated_msec': int(time.time() * 1000)}


def resources(metrics: Iterable[dataflow_api.Metric]) -> dict:
    """What the job reported using so far: `{'vcpu_seconds',
    'memory_gb_seconds', 'shuffle_gb'}`, each only once reported."""
    found = {}
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


def failure(message: dataflow_api.Message) -> dict:
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


def failures(messages: Iterable[dataflow_api.Message]) -> list[dict]:
    """The first error messages, trimmed, without repeats."""
    kept, seen = [], set()
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


def failure_sentence(trimmed: list[dict], console_url: Optional[str]) -> str:
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


# How people read what the record keeps (the CLI and the console alike).

def stages_text(stages: Optional[list]) -> Optional[str]:
    if not stages:
        return None
    return ', '.join(f'{stage["name"]} {stage["state"]}' for stage in stages)


def usage_text(usage: Optional[dict]) -> Optional[str]:
    usage = usage or {}
    parts = []
    if usage.get('workers') is not None:
        parts.append(f'{usage["workers"]} worker(s) at most')
    if usage.get('vcpu_seconds') is not None:
        parts.append(f'{usage["vcpu_seconds"] / 3600:.2f} vCPU hours')
    if usage.get('elapsed_seconds') is not None:
        parts.append(f'{readable.duration(usage["elapsed_seconds"])} elapsed')
    if usage.get('memory_gb_seconds') is not None:
        parts.append(f'{usage["memory_gb_seconds"] / 3600:.2f} GB-hours of memory')
    if usage.get('shuffle_gb') is not None:
        parts.append(f'{usage["shuffle_gb"]:.2f} GB shuffled')
    if usage.get('cost_usd') is not None:
        parts.append(f'${usage["cost_usd"]:.4f} at list rates')
    if usage.get('cpu_seconds') is not None:
        parts.append(f'{usage["cpu_seconds"]:.1f} s of CPU here')
    return ', '.join(parts) or None


def failure_text(failure: dict) -> str:
    where = [f"step '{failure['step']}'" if failure.get('step') else None,
             f'item {failure["item"]}' if failure.get('item') else None]
    where = [part for part in where if part]
    return failure['exception'] + (f' ({", ".join(where)})' if where else '')
