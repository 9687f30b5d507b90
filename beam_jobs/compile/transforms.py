"""The composite PTransforms a job compiles to: read → map → shuffle → reduce.

`RunJob` is the whole job: one source's read, then the job's steps, its
writes sent where the write mode says. `MapReduce` is the same job without the
read, for tests that feed models in with `beam.Create`. Both go through
`steps.JobSteps`, so there is one compile path.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import GoogleCloudOptions

from beam_jobs import job_class as job_class_lib
from beam_jobs import target as target_lib
from beam_jobs.compile import steps
from beam_jobs.io import before_images
from beam_jobs.io import namespaces as namespaces_lib
from beam_jobs.io import sources
from beam_jobs.io import write_modes

DEFAULT_SHARD_COUNT = 8
_LOCAL_PROJECT = 'beam-jobs-local'


def _lines(step_outputs: dict, with_order: bool):
    if with_order:
        return step_outputs['lines']
    return step_outputs['lines'] | 'Lines' >> beam.Map(lambda ordered: ordered[1])


def _label(prefix: str, job: Any) -> Optional[str]:
    return f'{prefix} {job_class_lib.job_name(job)}' if isinstance(job, type) else None


class MapReduce(beam.PTransform):
    """A job's logic over a PCollection of model instances: no Datastore read.

    Output: the output lines, error lines included, exactly as `RunJob`
    produces them (with `with_order`, as `(order, line)` pairs). Writes the
    job yields are summarised, never applied.
    """

    def __init__(self, job: type, params: Optional[Mapping[str, Any]] = None,
                 project: Optional[str] = None, namespace: Optional[str] = None,
                 with_order: bool = False):
        super().__init__(label=_label('MapReduce', job))
        job_class_lib.validate(job)
        self._job = job
        self._with_order = with_order
        self._params = job_class_lib.with_framework_params(job, params or {})
        project = project or os.environ.get('DATASTORE_PROJECT_ID') or os.environ.get(
            'GOOGLE_CLOUD_PROJECT') or _LOCAL_PROJECT
        self._target = target_lib.Target(project, namespace)

    def expand(self, models):
        step_outputs = models | 'Steps' >> steps.JobSteps(
            self._job, self._params, self._target,
            write_modes.WriteMode(write_modes.DRY_RUN))
        return _lines(step_outputs, self._with_order)


class RunJob(beam.PTransform):
    """The whole job: read every kind it maps over, map, shuffle, reduce.

    Reads the Datastore, or with `export` a managed export or a rehearsal's
    after state (io/sources.py). The job's writes go where the write mode
    says (io/write_modes.py): to the Datastore; nowhere for a dry run
    (`dry_run` in params) or a run over an export, which report them; into an
    after state folder with `after_state` (a rehearsal). A run the launcher
    planned passes its `source` and `write_mode`, decided once.

    Returns the PCollection of output lines (with `with_order`, of
    `(order, line)` pairs, which `StoreOutput` takes so the stored report's
    order does not depend on the runner). `queued_msec` is when the run was
    queued, for `entity_created_before_job_queued` (default: now).
    """

    def __init__(self, job: type, params: Optional[Mapping[str, Any]] = None,
                 shard_count: Optional[int] = None, project: Optional[str] = None,
                 namespace: Optional[str] = None, with_order: bool = False,
                 export: Optional[str] = None, after_state: Optional[str] = None,
                 *, source=None, write_mode: Optional[write_modes.WriteMode] = None,
                 queued_msec: Optional[int] = None,
                 namespaces: Optional[Sequence[str]] = None,
                 database: Optional[str] = None):
        super().__init__(label=_label('RunJob', job))
        self._models = job_class_lib.validate(job)
        self._job = job
        self._with_order = with_order
        self._params = job_class_lib.with_framework_params(job, params or {}, queued_msec)
        self._shard_count = DEFAULT_SHARD_COUNT if shard_count is None else shard_count
        if (isinstance(self._shard_count, bool) or not isinstance(self._shard_count, int)
                or self._shard_count < 1):
            raise ValueError(
                f'shard_count must be a positive number, not {shard_count!r}.')
        self._project = project
        self._namespace = None if namespaces else namespace
        self._namespaces = tuple(namespaces) if namespaces else None
        self._database = database
        self._source = source or sources.for_run(export)
        self._write_mode = write_mode or write_modes.decide(
            reads_export=self._source.reads_export,
            dry_run=bool(self._params.get('dry_run')), after_state=after_state)

    def _target(self, pipeline) -> target_lib.Target:
        flag_project = pipeline.options.view_as(GoogleCloudOptions).project
        return target_lib.Target.from_environment(
            self._project or flag_project, self._namespace, self._database)

    def expand(self, pbegin):
        target = self._target(pbegin.pipeline)
        if self._namespaces:    # each entity keeps its own namespace
            target = dataclasses.replace(target, namespace=None)
        entities = pbegin | self._source.label >> self._source.read(
            self._models, target, self._shard_count, self._namespaces)
        if self._namespaces:
            entities = entities | 'Count by namespace' >> beam.ParDo(
                namespaces_lib.CountByNamespace())
        step_outputs = entities | 'Steps' >> steps.JobSteps(
            self._job, self._params, target, self._write_mode,
            per_namespace=bool(self._namespaces))
        sink = self._write_mode.sink(target)
        if sink is not None:
            _ = step_outputs['writes'] | 'Write' >> sink
        if self._write_mode.keeps_before_images and self._write_mode.backup:
            _ = step_outputs['failed_keys'] | 'Failed keys' >> before_images.KeepFailedKeys(
                self._write_mode.backup)
        return _lines(step_outputs, self._with_order)


__all__ = ['MapReduce', 'RunJob', 'DEFAULT_SHARD_COUNT']
