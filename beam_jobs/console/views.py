"""Records as the console shows them: JSON-ready dicts with readable text.

The JSON API and the pages show the same numbers, so both take them from
here: every field of the record as stored, plus what a person reads (a
status label, times, a duration, where the run read, its progress).
Nothing here is HTML: the templates escape everything they are given.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from markdown_it import MarkdownIt

from beam_jobs import output_format
from beam_jobs import readable
from beam_jobs.io import sources
from beam_jobs.lifecycle import approval_signatures as signatures
from beam_jobs.lifecycle import estimate
from beam_jobs.lifecycle import run_text
from beam_jobs.records import audit as audit_lib
from beam_jobs.records import rehearsals as rehearsal_record
from beam_jobs.records import requests as request_records
from beam_jobs.records import runs

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

# CommonMark with raw HTML off: a note's `<script>` is shown as text, and
# markdown-it refuses javascript: and data: links by itself.
_MARKDOWN = MarkdownIt('commonmark', {'html': False, 'linkify': False})


def _plural(count: int, one: str, many: str) -> str:
    return f'{count} {one if count == 1 else many}'


def status_label(record: runs.RunRecord) -> str:
    """`Completed`, or `Completed, 3 items failed, 1 error line`: a run whose
    output reports errors never reads as plainly completed."""
    label = STATUS_LABELS.get(record.status, record.status)
    if record.status != runs.COMPLETED:
        return label
    parts = [label]
    if record.error_count:
        parts.append(f'{_plural(record.error_count, "item", "items")} failed')
    if record.error_line_count:
        parts.append(_plural(record.error_line_count, 'error line', 'error lines'))
    return ', '.join(parts)


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
            'updated': readable.when(progress.get('updated_msec'))}


def _percent(done: int, total: Optional[int]) -> Optional[float]:
    if total is None:
        return None
    if total <= 0:
        return 100.0
    return round(min(100.0, 100.0 * done / total), 1)


# The two words every page uses the same way (the legend under the tables).
LEGEND = {
    'failed_item': 'an entity (or a reduce key) whose map or reduce raised; '
                   'the framework writes an ERROR line for each, and it was '
                   'not processed.',
    'error_line': 'a line the job itself reported as an error (its own '
                  'failure output, e.g. ["FAILED", …]); the item was processed.',
}


def run_view(record: runs.RunRecord) -> dict[str, Any]:
    view = record.stored_fields()   # flat, a Dataflow run's fields beside the rest
    view.update(
        label=status_label(record),
        # Failed items or error lines: the badge that must not read as clean.
        has_errors=bool(record.error_count or record.error_line_count),
        finished=record.is_terminal,
        can_cancel=not record.is_terminal,
        seconds=record.seconds,
        created_text=readable.when(record.created_msec),
        started_text=readable.when(record.started_msec),
        finished_text=readable.when(record.finished_msec),
        duration_text=readable.duration(record.seconds),
        source_text=sources.text(record.source),
        progress_view=progress_view(record.progress) if not record.is_terminal else None,
        stages_text=run_text.stages_text(record.dataflow.stages),
        usage_text=run_text.usage_text(record.usage),
        cost_view=cost_view(record),
        budget_left_text=(None if record.is_terminal
                          else estimate.budget_left_text(record.dataflow.budget, record.usage)),
        failure_texts=[run_text.failure_text(f) for f in record.dataflow.failure_messages],
        url=f'/runs/{record.run_id}',
        backup_view=backup_view(record),
    )
    return view


def cost_view(record: runs.RunRecord) -> Optional[dict[str, Any]]:
    """A Dataflow run's estimate (made before it was submitted), beside what
    it reported, and its guardrails; None for a run that had none."""
    if not record.dataflow.estimate and not record.dataflow.budget:
        return None
    kept = record.dataflow.estimate or {}
    return {'estimate': estimate.figures_text(kept),
            'assumptions': kept.get('assumptions'),
            'warnings': kept.get('warnings') or [],
            'beside_actuals': estimate.beside_actuals(kept, record.usage),
            'guardrails': estimate.guardrails_text(record.dataflow.budget)}


def backup_view(record: runs.RunRecord) -> Optional[dict[str, Any]]:
    """The run's before-images for its page: where, per kind how many, and
    what can be done with them (a revert, dry run first; finishing it)."""
    backup = record.backup or {}
    dry_revert = bool(record.revert_of and record.params.get('dry_run'))
    kept = backup.get('state') == 'kept'
    if not dry_revert and (not backup or (kept and not backup.get('writes')
                                          and not record.error_count)):
        return None    # nothing written, nothing failed: nothing to show
    return {
        'state': backup.get('state'), 'location': backup.get('location'),
        'reason': backup.get('reason') or backup.get('error'),
        'writes': backup.get('writes'),
        'kinds': sorted((backup.get('kinds') or {}).items()),
        'can_revert': kept and bool(backup.get('writes')) and record.is_terminal,
        'can_retry': (kept and not record.revert_of and not record.params.get('dry_run')
                      and (record.status in (runs.FAILED, runs.CANCELED)
                           or bool(record.error_count))),
        # A dry run of a revert that completed: the revert itself, confirmed.
        'confirm_revert_of': (record.revert_of if dry_revert
                              and record.status == runs.COMPLETED else None),
    }


def output_view(stored: Optional[output_format.StoredOutput]) -> dict[str, Any]:
    """The stored output as stored (failures first), each line with its kind
    (`entries`), and the error lines alone: failed items and the job's own
    error lines, as the stored output classified them."""
    if stored is None:
        return {'lines': [], 'entries': [], 'error_lines': [], 'truncated': False}
    return {'lines': stored.lines, 'entries': stored.entries(),
            'error_lines': stored.error_lines, 'truncated': stored.truncated}


def markdown(text: Optional[str]) -> str:
    """Coordinator notes as HTML; raw HTML in them is escaped, never run."""
    return _MARKDOWN.render(text) if text else ''


def _counts(record: rehearsal_record.RehearsalRecord, approval: dict, badge: dict) -> bool:
    """Whether a standing approval can count at the gate: in signed mode only
    a verified one, or a console one where console_approvals = true."""
    if approval.get('withdrawn') or record.verdict != rehearsal_record.PASSED:
        return False
    return badge['state'] in ('unsigned', 'verified') or (
        badge['state'] == 'console' and signatures.console_approvals())


def rehearsal_view(record: rehearsal_record.RehearsalRecord) -> dict[str, Any]:
    view = dataclasses.asdict(record)
    badges = [signatures.badge(record, approval) for approval in record.approvals]
    view.update(
        label=VERDICT_LABELS.get(record.verdict, record.verdict),
        # "approved" only if an approval can count (the gate also checks the target).
        is_approved=any(_counts(record, approval, badge)
                        for approval, badge in zip(record.approvals, badges)),
        standing_approvers=[a['user'] for a in record.standing_approvals],
        can_approve=record.verdict == rehearsal_record.PASSED,
        is_running=record.is_running,
        created_text=readable.when(record.created_msec),
        url=f'/rehearsals/{record.rehearsal_id}',
        approvals=[{**approval, 'at_text': readable.when(approval.get('at_msec')),
                    'withdrawn': ({**approval['withdrawn'], 'at_text': readable.when(
                        approval['withdrawn'].get('at_msec'))}
                        if approval.get('withdrawn') else None),
                    'approvers': approval.get('approvers', 'unknown'),
                    'badge': badge}
                   for approval, badge in zip(record.approvals, badges)],
        # Signed approvals are made where the approver's key is, never in a
        # browser (unless console_approvals = true): the page offers the command.
        signed_mode=signatures.signed_mode(),
        console_approvals=signatures.console_approvals(),
        approve_command=f'beam-jobs approve {record.rehearsal_id} --project PROJECT',
        fingerprint_modules=sorted((record.fingerprint.get('modules') or {})),
        # Every run the rehearsal made, for links: the job's, then verify jobs'.
        run_ids=[run_id for run_id in
                 [record.run_id, *(check.get('run_id') for check in record.verify)]
                 if run_id],
    )
    return view


def request_view(record: request_records.RequestRecord) -> dict[str, Any]:
    view = dataclasses.asdict(record)
    link = record.link or ''
    view.update(state=record.state, verdict=record.verdict,
                state_text=record.state_text, age_text=readable.ago(record.created_msec),
                created_text=readable.when(record.created_msec),
                expect_file=(record.expect or {}).get('file'),
                link_url=link if link.startswith(('https://', 'http://')) else None,
                url=f'/requests#{record.request_id}')
    return view


def decision_view(decision: audit_lib.GateDecision) -> dict[str, Any]:
    view = dataclasses.asdict(decision)
    view.update(at_text=readable.when(decision.at_msec))
    return view


PLAN_STATES = {
    'may run': 'May run now', 'ran': 'Ran', 'waits for': 'Waits for a job before it',
    'unapproved': 'Not approved', 'unrehearsed': 'Not rehearsed',
    'not covered': 'Approval does not cover it', 'unknown': 'Code not here',
}


def planned_view(planned) -> dict[str, Any]:
    """A job of the release plan (rehearsal/release_plan.py), for its page."""
    verdict = planned.verdict
    return {
        'order': planned.order, 'job_name': planned.job_name, 'follows': planned.follows,
        'state': planned.state, 'label': PLAN_STATES.get(planned.state, planned.state),
        'may_run': verdict.may_run, 'sentence': verdict.sentence, 'reasons': verdict.reasons,
        'rehearsal_id': verdict.rehearsal_id, 'approved_by': verdict.approved_by,
        'request_id': planned.request_id, 'next_step': verdict.next_step,
        'expires_text': readable.until(verdict.expires_msec),
        'ran': planned.ran, 'ran_text': readable.when((planned.ran or {}).get('finished_msec')),
    }
