"""The legacy lifecycle hooks a job may override, called once per run.

Real one-off jobs did work around their runs in these hooks (a user-query job
sent its completion and failure emails from the post hooks), so they keep
their names and meanings:

    _pre_start_hook(job_id)               before the run starts
    _post_completed_hook(job_id)          after it is recorded completed
    _post_failure_hook(job_id)            after it is recorded failed
    _pre_cancel_hook(job_id, message)     before it is recorded canceled
    _post_cancel_hook(job_id, message)    after it is recorded canceled

They run in the process that records the run's end, and a record reaches a
given end only once (the move is a transaction), so each runs at most once:
for a local run that is its own process (or whoever finds it orphaned or
cancels it before it started); for a Dataflow run, whoever first sees the
job finished. A hook that raises never changes the run's status: the error
is kept in the record's `hook_errors`.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from beam_jobs import config
from beam_jobs import job_class as job_class_lib
from beam_jobs import registry

_LOG = logging.getLogger(__name__)
_POST_HOOKS = {'completed': '_post_completed_hook', 'failed': '_post_failure_hook',
               'canceled': '_post_cancel_hook'}


def resolve(job_name: str) -> Optional[type]:
    """The job class a record names: one this process has seen, else the
    configured registry's; None if neither knows it (then no hooks run)."""
    job = job_class_lib.seen_job(job_name)
    if job is not None:
        return job
    module = config.get('registry')
    if not module:
        return None
    try:
        return registry.load(module).get(job_name)
    except (registry.UnknownJobError, ValueError):
        return None


def call(job_name: str, hook: str, *args: Any) -> Optional[str]:
    """Call one hook of the named job; returns the error text if it raised."""
    job = resolve(job_name)
    method = getattr(job, hook, None) if job is not None else None
    if method is None:
        return None
    try:
        method(*args)
    except Exception as error:  # pylint: disable=broad-except
        _LOG.exception('%s.%s raised', job_name, hook)
        return f'{hook}: {type(error).__name__}: {error}'
    return None


def after_end(job_name: str, run_id: str, status: str,
              cancel_message: Optional[str] = None) -> Optional[str]:
    """The post hook for the end the record just reached."""
    hook = _POST_HOOKS.get(status)
    if hook is None:
        return None
    args = (run_id, cancel_message) if status == 'canceled' else (run_id,)
    return call(job_name, hook, *args)
