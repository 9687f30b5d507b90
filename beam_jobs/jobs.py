"""`BaseMapReduceOneOffJobManager`: the legacy job API, unchanged in shape.

A ported job keeps its class, its `map`, `reduce` and
`entity_classes_to_map_over`, its `enqueue` override and its hooks; only its
imports change. The lifecycle methods and the dashboard helpers below keep
their old names and meanings (App Engine's `core/jobs.py`) and are backed by
run records in the Datastore.
"""

from __future__ import annotations

import datetime
from typing import Any, Mapping, Optional

from apache_beam.metrics import Metrics

from beam_jobs import job_class as job_class_lib
from beam_jobs.compile.transforms import DEFAULT_SHARD_COUNT
from beam_jobs.job_class import Delete, InvalidJobError, Put  # noqa: F401  (public names)
from beam_jobs.lifecycle import follow
from beam_jobs.lifecycle import launcher
from beam_jobs.lifecycle import record_stores
from beam_jobs.records import runs

STATUS_CODE_NEW = runs.NEW
STATUS_CODE_QUEUED = runs.QUEUED
STATUS_CODE_STARTED = runs.STARTED
STATUS_CODE_COMPLETED = runs.COMPLETED
STATUS_CODE_FAILED = runs.FAILED
STATUS_CODE_CANCELED = runs.CANCELED

MAPPER_PARAM_KEY_ENTITY_KINDS = job_class_lib.ENTITY_KINDS_PARAM
MAPPER_PARAM_KEY_QUEUED_TIME_MSECS = job_class_lib.QUEUED_TIME_PARAM
# What the old dashboard showed: runs of the last 14 days, at most 100.
DEFAULT_RECENCY_MSEC = 14 * 24 * 60 * 60 * 1000
NUM_JOBS_IN_DASHBOARD_LIMIT = 100


def run_store() -> runs.RunStore:
    """The run records of the Datastore this process uses.

    With no Datastore configured, the embedded default applies: the project's
    emulator, started or shared with other commands. With Dataflow configured
    (`runner = "DataflowRunner"`), the Datastore of the configured project.
    """
    return record_stores.configured_run_store()


class BaseMapReduceOneOffJobManager:
    """Base of one-off jobs: subclass it and define the three methods below."""

    # Set to True to stop the whole run at the first failed entity or key
    # (or pass `fail_fast` in additional_job_params) instead of reporting
    # each failure as an output line and going on.
    FAIL_FAST = False

    @classmethod
    @job_class_lib.abstract_job_method
    def entity_classes_to_map_over(cls) -> list:
        """The ndb model classes whose entities `map` receives."""
        raise NotImplementedError

    @staticmethod
    @job_class_lib.abstract_job_method
    def map(item):
        """Yield `(key, value)` pairs (or `Put`/`Delete`) for one entity."""
        raise NotImplementedError

    @staticmethod
    @job_class_lib.abstract_job_method
    def reduce(key, values):
        """Yield output lines for one key and all its (string) values."""
        raise NotImplementedError

    # The lifecycle, as App Engine MapReduce jobs knew it.

    @classmethod
    def create_new(cls) -> str:
        """Record a new run of this job and return its id."""
        job_class_lib.validate(cls)
        return run_store().create(job_class_lib.job_name(cls)).run_id

    @classmethod
    def enqueue(cls, job_id: str, queue_name: Any = None,
                additional_job_params: Optional[dict] = None,
                shard_count: Optional[int] = None) -> None:
        """Run the job. Locally: synchronously, on the local runner. With
        Dataflow configured (`runner = "DataflowRunner"` under
        [tool.beam-jobs], or BEAM_JOBS_RUNNER): submit it and return at once.

        Takes every form old code used: `enqueue(job_id)`,
        `enqueue(job_id, queue_name, additional_job_params=...)`,
        `enqueue(job_id, additional_job_params={...})` and the one-off form
        `enqueue(job_id, {...})`, whose second argument is the params.
        `queue_name` is kept in the record only: the runner schedules the
        work. `shard_count` becomes the number of key-range splits of each
        Datastore read (default 8).
        """
        if isinstance(queue_name, Mapping) and additional_job_params is None:
            queue_name, additional_job_params = None, queue_name
        launcher.run_job(cls, run_id=job_id, params=additional_job_params,
                         shard_count=DEFAULT_SHARD_COUNT if shard_count is None else shard_count,
                         target=run_store().target,
                         queue_name=None if queue_name is None else str(queue_name))

    @classmethod
    def get_record(cls, job_id: str) -> runs.RunRecord:
        """The run as it is now (followed: a Dataflow job seen done ends the
        run here, and its hooks are this class's)."""
        job_class_lib.remember(cls)
        return follow.current(run_store(), job_id)

    @classmethod
    def get_status_code(cls, job_id: str) -> str:
        return cls.get_record(job_id).status

    @classmethod
    def is_active(cls, job_id: str) -> bool:
        """Queued or started: the run may still change data."""
        return cls.get_status_code(job_id) in (runs.QUEUED, runs.STARTED)

    @classmethod
    def has_finished(cls, job_id: str) -> bool:
        """Completed or failed, as it was (a canceled run has not finished)."""
        return cls.get_status_code(job_id) in (runs.COMPLETED, runs.FAILED)

    @classmethod
    def get_time_queued_msec(cls, job_id: str) -> Optional[int]:
        return cls.get_record(job_id).queued_msec

    @classmethod
    def get_time_started_msec(cls, job_id: str) -> Optional[int]:
        return cls.get_record(job_id).started_msec

    @classmethod
    def get_time_finished_msec(cls, job_id: str) -> Optional[int]:
        return cls.get_record(job_id).finished_msec

    @classmethod
    def get_metadata(cls, job_id: str) -> dict:
        """What the runner says about the run: its runner, where its log is,
        and for a Dataflow run the job id and console link."""
        record = cls.get_record(job_id)
        metadata = {'runner': record.runner, 'log_file': record.log_file,
                    'source': record.source}
        if record.dataflow.job_id:
            metadata.update(dataflow_job_id=record.dataflow.job_id,
                            console_url=record.dataflow.console_url)
        return metadata

    @classmethod
    def get_output(cls, job_id: str) -> list[str]:
        return run_store().output(job_id)

    @classmethod
    def get_error(cls, job_id: str) -> Optional[str]:
        return cls.get_record(job_id).error

    @classmethod
    def cancel(cls, job_id: str, user_id: Optional[str] = None) -> None:
        launcher.cancel_run(run_store(), job_id, user_id)

    @classmethod
    def cancel_all_unfinished_jobs(cls, user_id: Optional[str] = None) -> None:
        """Cancel every queued or started run of this job."""
        store = run_store()
        for record in follow.unfinished(store, job_class_lib.job_name(cls)):
            try:
                launcher.cancel_run(store, record.run_id, user_id)
            except runs.InvalidTransitionError:
                pass   # it ended meanwhile

    # Hooks a job may override; see hooks.py for when each runs.

    @classmethod
    def _pre_start_hook(cls, job_id: str) -> None:
        pass

    @classmethod
    def _post_completed_hook(cls, job_id: str) -> None:
        pass

    @classmethod
    def _post_failure_hook(cls, job_id: str) -> None:
        pass

    @classmethod
    def _pre_cancel_hook(cls, job_id: str, cancel_message: str) -> None:
        pass

    @classmethod
    def _post_cancel_hook(cls, job_id: str, cancel_message: str) -> None:
        pass

    # What job code may call while it runs.

    @staticmethod
    def get_mapper_param(param_name: str) -> Any:
        """An entry of the run's `additional_job_params` (or one the framework
        sets: `entity_kinds`, `queued_time_msecs`)."""
        return job_class_lib.get_mapper_param(param_name)

    @staticmethod
    def entity_created_before_job_queued(entity) -> bool:
        """Whether `entity.created_on` is no later than when the run was
        queued: a mapper's guard against entities a running job created."""
        queued_msec = float(job_class_lib.get_mapper_param(
            job_class_lib.QUEUED_TIME_PARAM))
        return queued_msec >= _msec(entity.created_on)

    _entity_created_before_job_queued = entity_created_before_job_queued

    @classmethod
    def increment_counter(cls, name: str, amount: int = 1) -> None:
        """Add to a counter of this job; `run` prints it, the record keeps it."""
        Metrics.counter(job_class_lib.job_name(cls), name).inc(amount)


def _msec(when: datetime.datetime) -> float:
    if when.tzinfo is None:   # ndb stores naive datetimes in UTC
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp() * 1000


# Dashboard helpers, as the old admin page used them.

def _dashboard_dict(record: runs.RunRecord) -> dict:
    def readable(msec: Optional[int]) -> str:
        return '' if not msec else datetime.datetime.fromtimestamp(
            msec / 1000).strftime('%B %d %H:%M:%S')
    return {
        'id': record.run_id, 'job_type': record.job_name,
        'status_code': record.status,
        'time_started_msec': record.started_msec,
        'time_finished_msec': record.finished_msec,
        'is_cancelable': not record.is_terminal,
        'error': record.error,
        'human_readable_time_started': readable(record.started_msec),
        'human_readable_time_finished': readable(record.finished_msec),
    }


def get_data_for_recent_jobs(recency_msec: int = DEFAULT_RECENCY_MSEC) -> list[dict]:
    """Runs created in the last `recency_msec`, newest first, at most 100."""
    cutoff = runs.now_msec() - recency_msec
    return [_dashboard_dict(record)
            for record in follow.recent(run_store(), NUM_JOBS_IN_DASHBOARD_LIMIT)
            if record.created_msec >= cutoff]


def get_data_for_unfinished_jobs() -> list[dict]:
    """Runs that are new, queued or started, newest first, at most 100."""
    return [_dashboard_dict(record) for record in
            follow.unfinished(run_store(), limit=NUM_JOBS_IN_DASHBOARD_LIMIT)]


def get_job_output(job_id: str) -> list[str]:
    return run_store().output(job_id)


def get_stuck_jobs(recency_msecs: int) -> list[runs.RunRecord]:
    """Runs of the last `recency_msecs` that got stuck: failed (including
    those whose process died and were found orphaned), or still queued or
    started for longer than that. What the old cron mailed about."""
    now = runs.now_msec()
    stuck = []
    for record in follow.recent(run_store(), NUM_JOBS_IN_DASHBOARD_LIMIT):
        if record.created_msec < now - recency_msecs and record.is_terminal:
            continue
        started = record.started_msec or record.queued_msec or record.created_msec
        if record.status == runs.FAILED or (
                record.status in (runs.QUEUED, runs.STARTED)
                and now - started > recency_msecs):
            stuck.append(record)
    return stuck
