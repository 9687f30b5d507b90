"""How a run ends: its record moved to the end once, the job's hooks around it.

Whichever backend sees the end (the local run itself, a cancel, a reader
that finds the process gone or the Dataflow job finished) ends the run here.
The move is a transaction that happens once, so the job's legacy hooks
(hooks.py) run once, in the process that made it.
"""

from __future__ import annotations

from typing import Any, Optional

from beam_jobs import failures
from beam_jobs.io import before_images
from beam_jobs.lifecycle import hooks
from beam_jobs.records import runs


def cancel_message(record: runs.RunRecord, reason: Optional[str]) -> str:
    """`Canceled by USER.` when the canceler said who (it notes that before
    it signals the run), as the old framework's cancel message read."""
    if record.canceled_by:
        return f'Canceled by {record.canceled_by}.'
    return f'Canceled: {reason}' if reason else 'Canceled.'


def end_run(store: runs.RunStore, run_id: str, status: str, *,
            stop_reason: Optional[str] = None, **fields: Any) -> runs.RunRecord:
    """Move a run to `status` (an end), calling its hooks; raises
    InvalidTransitionError if it has already ended. A cancel with no `error`
    says who canceled, else `stop_reason`."""
    hook_errors = []
    current = store.get(run_id)
    ending_now = status in runs.ALLOWED.get(current.status, ())
    if status == runs.CANCELED:
        if fields.get('error') is None:
            fields['error'] = cancel_message(current, stop_reason)
        if ending_now and not current.revert_of:
            hook_errors.append(hooks.call(current.job_name, '_pre_cancel_hook',
                                          run_id, fields['error']))
    if ending_now and (current.backup or {}).get('state') == 'keeping':
        fields['backup'] = finish_backup(current, status)
    record = store.transition(run_id, status, **fields)
    if not record.revert_of:
        hook_errors.append(hooks.after_end(record.job_name, run_id, status,
                                           record.error or 'Canceled'))
    hook_errors = [error for error in hook_errors if error]
    if hook_errors:
        record = store.update(run_id, hook_errors=record.hook_errors + hook_errors)
    return record


def finish_backup(record: runs.RunRecord, status: str) -> dict[str, Any]:
    """The manifest of a run's before-images, written as it ends (whatever
    the end: a failed run's writes need undoing most); what its record keeps."""
    location = record.backup['location']
    try:
        manifest = before_images.finish(
            location, record.run_id, record.job_name,
            (record.source or {}).get('project'), (record.source or {}).get('namespace'),
            status)
    except Exception as error:  # pylint: disable=broad-except
        return {'location': location, 'state': 'unfinished',
                'error': f'its manifest could not be written ({failures.describe(error)})'}
    return manifest.describe()


def end_unless_ended(store: runs.RunStore, run_id: str, status: str,
                     **fields: Any) -> runs.RunRecord:
    """`end_run`, or the record as it is if another process ended it first
    (that end stands)."""
    try:
        return end_run(store, run_id, status, **fields)
    except runs.InvalidTransitionError:
        return store.get(run_id)
