"""A run record's figures as people read them: the CLI and the console alike.

The poll (dataflow.py) fills the record and dataflow_fields.py shapes what it
keeps; this module only says it: its progress, its stages, what it used and
why it failed.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from beam_jobs import progress
from beam_jobs import readable
from beam_jobs.records import runs


def progress_text(record: runs.RunRecord) -> Optional[str]:
    """How far the run has read; None once a local run ended (its counters
    say it all)."""
    if not record.progress or record.is_terminal and not record.dataflow.job_id:
        return None
    return progress.describe(record.progress)


def stages_text(stages: Optional[list[dict[str, Any]]]) -> Optional[str]:
    if not stages:
        return None
    return ', '.join(f'{stage["name"]} {stage["state"]}' for stage in stages)


def usage_text(usage: Optional[dict[str, Any]]) -> Optional[str]:
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


def failure_text(failure: Mapping[str, Any]) -> str:
    """One trimmed error message of a failed Dataflow job (dataflow_fields.failure)."""
    exception: str = failure['exception']
    where = ([f"step '{failure['step']}'"] if failure.get('step') else []) + (
        [f'item {failure["item"]}'] if failure.get('item') else [])
    return exception + (f' ({", ".join(where)})' if where else '')
