"""Records as the console shows them: JSON-ready dicts with readable text.

The JSON API and the pages show the same numbers, so both take them from
here: every field of the record as stored, plus what a person reads (a
status label, times, a duration, where the run read, its progress).
Nothing here is HTML: the templates escape everything they are given.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any, Optional, Sequence

from markdown_it import MarkdownIt

from beam_jobs import runs
from beam_jobs.rehearsal import record as rehearsal_record

STATUS_LABELS = {
    runs.NEW: 'Waiting to start',
    runs.QUEUED: 'Queued',
    runs.STARTED: 'Running',
    runs.COMPLETED: 'Completed',
    runs.FAILED: 'Failed',
    runs.CANCELED: 'Canceled',
}
VERDICT_LABELS = {
    rehearsal_record.RUNNING: 'Rehearsing',
    rehearsal_record.PASSED: 'Passed',
    rehearsal_record.FAILED: 'Failed',
}
ERROR_PREFIX = 'ERROR'
TRUNCATED_PREFIX = '<TRUNCATED'

# CommonMark with raw HTML off: a note's `<script>` is shown as text, and
# markdown-it refuses javascript: and data: links by itself.
_MARKDOWN = MarkdownIt('commonmark', {'html': False, 'linkify': False})


def when(msec: Optional[int]) -> str:
    if not msec:
        return '-'
    return datetime.datetime.fromtimestamp(msec / 1000).strftime('%Y-%m-%d %H:%M:%S')


def duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return '-'
    if seconds < 60:
        return f'{seconds:.1f} s'
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f'{minutes} min {secs} s'
    hours, minutes = divmod(minutes, 60)
    return f'{hours} h {minutes} min'


def status_label(record: runs.RunRecord) -> str:
    label = STATUS_LABELS.get(record.status, record.status)
    if record.status == runs.COMPLETED and record.error_count:
        items = 'item' if record.error_count == 1 else 'items'
        return f'{label}, {record.error_count} {items} failed'
    return label


def source_text(source: dict) -> str:
    """Where a run read, in one line (as `beam-jobs status` says it)."""
    if not source:
        return '-'
    if source.get('type') == 'export':
        counts = ', '.join(f'{kind} {count}' for kind, count in
                           sorted((source.get('entities') or {}).items()))
        taken = source.get('timestamp') or '?'
        return (f'export {source.get("path")} (taken {taken}'
                f'{"; " + counts if counts else ""})')
    namespace = source.get('namespace')
    return (f'Datastore of project {source.get("project")}'
            f'{", namespace " + namespace if namespace else ""}')


def progress_view(progress: dict) -> Optional[dict]:
    """Entities read so far per kind, with a percentage where the total is known.

    `progress` is what a running local run reports (see progress.py):
    `{'read': {kind: n}, 'total': {kind: n or None}, 'updated_msec': int}`.
    """
    if not progress or not progress.get('read') and not progress.get('total'):
        return None
    read = progress.get('read') or {}
    totals = progress.get('total') or {}
    kinds = []
    for kind in sorted(set(read) | set(totals)):
        done, total = int(read.get(kind) or 0), totals.get(kind)
        kinds.append({'kind': kind, 'read': done, 'total': total,
                      'percent': _percent(done, total)})
    all_known = bool(kinds) and all(k['total'] is not None for k in kinds)
    read_sum = sum(k['read'] for k in kinds)
    total_sum = sum(k['total'] for k in kinds) if all_known else None
    return {'kinds': kinds, 'read': read_sum, 'total': total_sum,
            'percent': _percent(read_sum, total_sum),
            'updated': when(progress.get('updated_msec'))}


def _percent(done: int, total: Optional[int]) -> Optional[float]:
    if total is None:
        return None
    if total <= 0:
        return 100.0
    return round(min(100.0, 100.0 * done / total), 1)


def run_view(record: runs.RunRecord) -> dict[str, Any]:
    view = dataclasses.asdict(record)
    view.update(
        label=status_label(record),
        finished=record.is_terminal,
        can_cancel=not record.is_terminal,
        seconds=record.seconds,
        created_text=when(record.created_msec),
        started_text=when(record.started_msec),
        finished_text=when(record.finished_msec),
        duration_text=duration(record.seconds),
        source_text=source_text(record.source),
        progress_view=progress_view(record.progress) if not record.is_terminal else None,
        url=f'/runs/{record.run_id}',
    )
    return view


def output_view(lines: Sequence[str]) -> dict[str, Any]:
    """The output with ERROR lines first (stable), and the error lines alone.

    The stored output already puts failures first; sorting again costs
    nothing and keeps that promise for output stored by older versions.
    """
    errors = [line for line in lines if line.startswith(ERROR_PREFIX)]
    others = [line for line in lines if not line.startswith(ERROR_PREFIX)]
    return {'lines': errors + others, 'error_lines': errors,
            'truncated': any(line.startswith(TRUNCATED_PREFIX) for line in lines)}


def markdown(text: Optional[str]) -> str:
    """Coordinator notes as HTML; raw HTML in them is escaped, never run."""
    return _MARKDOWN.render(text) if text else ''


def rehearsal_view(record: rehearsal_record.RehearsalRecord) -> dict[str, Any]:
    view = dataclasses.asdict(record)
    view.update(
        label=VERDICT_LABELS.get(record.verdict, record.verdict),
        is_approved=record.is_approved,
        can_approve=record.verdict == rehearsal_record.PASSED,
        created_text=when(record.created_msec),
        url=f'/rehearsals/{record.rehearsal_id}',
        approvals=[{**approval, 'at_text': when(approval.get('at_msec'))}
                   for approval in record.approvals],
        # Every run the rehearsal made, for links: the job's, then verify jobs'.
        run_ids=[run_id for run_id in
                 [record.run_id, *(check.get('run_id') for check in record.verify)]
                 if run_id],
    )
    return view
