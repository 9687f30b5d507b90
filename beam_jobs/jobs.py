"""`BaseMapReduceOneOffJobManager`: the legacy job API, unchanged in shape.

A ported job keeps its class, its `map`, `reduce` and
`entity_classes_to_map_over`, and its `enqueue` override; only its imports
change. The lifecycle methods (`create_new`, `enqueue`, `get_status_code`,
`get_output`, `get_error`, `cancel`) keep their old names and meanings and
are backed by run records in the Datastore.
"""

from __future__ import annotations

from typing import Any, Optional

from apache_beam.metrics import Metrics

from beam_jobs import job_class as job_class_lib
from beam_jobs import launcher
from beam_jobs import runs
from beam_jobs.job_class import Delete, InvalidJobError, Put  # noqa: F401  (public names)
from beam_jobs.transforms import DEFAULT_SHARD_COUNT

STATUS_CODE_NEW = runs.NEW
STATUS_CODE_QUEUED = runs.QUEUED
STATUS_CODE_STARTED = runs.STARTED
STATUS_CODE_COMPLETED = runs.COMPLETED
STATUS_CODE_FAILED = runs.FAILED
STATUS_CODE_CANCELED = runs.CANCELED


def run_store() -> runs.RunStore:
    """The run records of the Datastore this process uses.

    With no Datastore configured, the embedded default applies: the project's
    long-lived emulator if one runs, else one started for this process. With
    Dataflow configured (`runner = "DataflowRunner"`), the Datastore of the
    configured project.
    """
    return launcher.run_store()


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
    def enqueue(cls, job_id: str, additional_job_params: Optional[dict] = None,
                shard_count: int = DEFAULT_SHARD_COUNT) -> None:
        """Run the job. Locally: synchronously, on the local runner. With
        Dataflow configured (`runner = "DataflowRunner"` under
        [tool.beam-jobs], or BEAM_JOBS_RUNNER): submit it and return at once.

        `shard_count` is a hint: it becomes the number of key-range splits
        of each Datastore read.
        """
        launcher.run_job(cls, run_id=job_id, params=additional_job_params,
                         shard_count=shard_count,
                         target=run_store().target)

    @classmethod
    def get_record(cls, job_id: str) -> runs.RunRecord:
        return run_store().get(job_id)

    @classmethod
    def get_status_code(cls, job_id: str) -> str:
        return cls.get_record(job_id).status

    @classmethod
    def get_output(cls, job_id: str) -> list[str]:
        return run_store().output(job_id)

    @classmethod
    def get_error(cls, job_id: str) -> Optional[str]:
        return cls.get_record(job_id).error

    @classmethod
    def cancel(cls, job_id: str, user_id: Optional[str] = None) -> None:
        launcher.cancel_run(run_store(), job_id, user_id)

    # What job code may call while it runs.

    @staticmethod
    def get_mapper_param(param_name: str) -> Any:
        """An entry of the run's `additional_job_params`."""
        return job_class_lib.get_mapper_param(param_name)

    @classmethod
    def increment_counter(cls, name: str, amount: int = 1) -> None:
        """Add to a counter of this job; `run` prints it, the record keeps it."""
        Metrics.counter(job_class_lib.job_name(cls), name).inc(amount)
