"""A run planned once: every check, every decision, before a run exists.

`plan_run` checks what can be refused (the job class, params, shard count,
every flag, a Dataflow run's settings and credentials, the export and its
kinds, the production gate) and decides what the run reads (a `Source`) and
what becomes of its writes (a `WriteMode`). The plan carries both; the
pipeline, the gate, the summary, the console's confirmation and the rehearsal
read them and never decide again. Whatever it refuses is a `refusals.Refused`
(or a kind of it: FlagError, DataflowError, ExportError, GateError,
InvalidJobError…) with one sentence saying what to fix, and leaves no record
behind.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Mapping, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import GoogleCloudOptions
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import WorkerOptions
from google.cloud import ndb

from beam_jobs import config
from beam_jobs import emulator
from beam_jobs import entities
from beam_jobs import job_class as job_class_lib
from beam_jobs import options as options_lib
from beam_jobs import refusals
from beam_jobs import target as target_lib
from beam_jobs.compile.transforms import DEFAULT_SHARD_COUNT
from beam_jobs.io import before_images
from beam_jobs.io import sources
from beam_jobs.io import write_modes
from beam_jobs.lifecycle import dataflow_settings
from beam_jobs.lifecycle import estimate as estimate_lib
from beam_jobs.lifecycle import gate as gate_lib
from beam_jobs.lifecycle import prices
from beam_jobs.lifecycle import record_stores
from beam_jobs.records import audit as audit_lib
from beam_jobs.records import rehearsals as rehearsal_records
from beam_jobs.records import runs

# The legacy way to name a run's export: an entry of additional_job_params.
EXPORT_PARAM = 'export'

# A revert's own steps for the run's Datastore and write mode: pbegin → the
# run's lines (lifecycle/revert.py).
Steps = Callable[[target_lib.Target, write_modes.WriteMode],
                 beam.PTransform[beam.pvalue.PBegin, beam.PCollection[Any]]]


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """A run that passed every check: what a backend needs, nothing to refuse."""

    job: type
    models: tuple[type[ndb.Model], ...]
    params: dict[str, Any]
    shard_count: int
    pipeline_options: PipelineOptions
    # What it reads (io/sources.py) and what becomes of its writes
    # (io/write_modes.py).
    source: Any
    write_mode: write_modes.WriteMode
    namespace: Optional[str] = None
    # What the production gate found (gate.py), kept in the record.
    gate: dict[str, Any] = dataclasses.field(default_factory=dict)
    # The run this one finishes (`--retry-failed`) or takes back (a revert:
    # lifecycle/revert.py, whose `steps` replace the job's).
    retry_of: Optional[str] = None
    revert_of: Optional[str] = None
    steps: Optional[Steps] = None
    # A Dataflow run's estimate (lifecycle/estimate.py, as its record keeps
    # it) and guardrails ({'max_num_workers', 'flexrs', 'max_cost_usd',
    # 'rates'}); empty for local runs.
    estimate: dict[str, Any] = dataclasses.field(default_factory=dict)
    budget: dict[str, Any] = dataclasses.field(default_factory=dict)
    # `--namespaces`: every namespace the run reads ('' the default one;
    # io/namespaces.py), None for a run over one (`namespace`); and the
    # database (None: the project's default one).
    namespaces: Optional[tuple[str, ...]] = None
    database: Optional[str] = None

    @property
    def job_name(self) -> str:
        return job_class_lib.job_name(self.job)

    @property
    def kinds(self) -> list[str]:
        return [entities.kind_of(model) for model in self.models]

    @property
    def is_dataflow(self) -> bool:
        return options_lib.is_dataflow(self.pipeline_options)

    @property
    def runner(self) -> str:
        return options_lib.runner_name(self.pipeline_options)

    @property
    def guardrails(self) -> Optional[str]:
        """What keeps a Dataflow run small, as the summary states it."""
        return estimate_lib.guardrails_text(self.budget)

    @property
    def flag_project(self) -> Optional[str]:
        project: Optional[str] = self.pipeline_options.view_as(GoogleCloudOptions).project
        return project

    def data_target(self, records: target_lib.Target) -> target_lib.Target:
        """The Datastore the run reads and writes: a Dataflow run's project
        (its records may live elsewhere: the team's shared records); a local
        run's, where its records are."""
        if self.is_dataflow:
            data = target_lib.Target.from_environment(
                self.flag_project, self.namespace, self.database)
        else:
            data = dataclasses.replace(records, database=self.database)
        # A run over several namespaces has none of its own: each entity
        # keeps its own, and a model the job makes goes to the default one.
        return dataclasses.replace(data, namespace=None) if self.namespaces else data

    def source_record(self, records: target_lib.Target) -> dict[str, Any]:
        """Where the run reads, as its record keeps it (io/sources.py), with
        the namespaces of a `--namespaces` run."""
        described: dict[str, Any] = self.source.describe(self.data_target(records))
        if self.namespaces:
            described['namespaces'] = list(self.namespaces)
        return described

    def backup_of(self, run_id: str) -> dict[str, Any]:
        """What the record of run `run_id` says of its before-images when
        it starts (the manifest replaces it when the run ends)."""
        mode = self.write_mode.for_run(run_id)
        if mode.keeps_before_images:
            return {'location': mode.backup, 'state': 'keeping'}
        if mode.changes_datastore:
            return {'state': 'off', 'reason': 'run with --no-backup: no '
                    'before-images were kept, so it cannot be reverted'}
        return {}

    def over(self, source: sources.Source) -> 'RunPlan':
        """The same run over another source (a rehearsal's verify job, over
        the after state its job has just written)."""
        return dataclasses.replace(
            self, source=source,
            write_mode=write_modes.decide(reads_export=source.reads_export,
                                          dry_run=bool(self.params.get('dry_run'))))


def check_shard_count(shard_count: Optional[int]) -> int:
    """The shard count to use; bad ones are refused before a run starts."""
    if shard_count is None:
        return DEFAULT_SHARD_COUNT
    if isinstance(shard_count, bool) or not isinstance(shard_count, int) or shard_count < 1:
        raise refusals.Refused(f'shard_count must be a positive whole number, not '
                               f'{shard_count!r}: it is how many key ranges each '
                               'Datastore read is split into (default 8).')
    return shard_count


class NothingLeftError(Exception):
    """A retry of a run that left nothing to do (not a refusal: exit 0)."""


def plan_run(job: type, params: Optional[Mapping[str, Any]] = None,
             shard_count: Optional[int] = None,
             pipeline_args: Sequence[str] = (),
             export: Optional[str] = None,
             namespace: Optional[str] = None,
             skip_rehearsal: Optional[gate_lib.Skip] = None,
             after_state: Optional[str] = None,
             own_flags: Sequence[str] = (),
             command: str = 'beam-jobs run', *,
             backup_location: Optional[str] = None, no_backup: bool = False,
             retry_of: Optional[runs.RunRecord] = None,
             max_cost_usd: Optional[Any] = None, flexrs: bool = False,
             namespaces: Optional[Sequence[str]] = None) -> RunPlan:
    """Check a run before it exists, and decide what it reads and writes.

    `own_flags` are the surface's own flags, offered first when a mistyped
    one is refused; `after_state` (a rehearsal) sends the writes there. A
    run that writes a Datastore keeps before-images under `backup_location`
    (default: backup_root) unless `no_backup`; `retry_of` (a run's record)
    makes this run finish that one (retry_source). A Dataflow run gets its
    guardrails (a worker cap, a budget: `max_cost_usd` or the setting,
    FlexRS with `flexrs`) and an estimate (estimate_for). `namespaces`
    (parsed `--namespaces`) reads each of them (or all) in the one run.
    """
    if namespaces and namespace:
        raise refusals.Refused('--namespaces reads several namespaces and --namespace one: '
                               'pass one of them.')
    database = target_lib.run_database()
    models = job_class_lib.validate(job)
    params = dict(params or {})
    export = export or params.pop(EXPORT_PARAM, None)
    job_class_lib.check_params(params)
    shard_count = check_shard_count(shard_count)
    pipeline_options = options_lib.pipeline_options(pipeline_args, own_flags, command)
    budget = _budget(pipeline_options, max_cost_usd, flexrs)
    if options_lib.is_dataflow(pipeline_options):
        target_lib.check_database_exists(
            pipeline_options.view_as(GoogleCloudOptions).project, database)
    namespace = run_namespace(namespace)
    source = _source(job, params, export, retry_of)
    namespaces = namespaces or (retry_of.source.get('namespaces')
                                if retry_of is not None else None)
    if namespaces:
        namespaces = _namespaces_read(source, namespaces, pipeline_options, namespace,
                                      database)
    else:
        source.check(models, namespace)
        total = source.entity_total(models, namespace)
        if total is not None and source.reads_export:
            options_lib.use_processes_for_export(pipeline_options, pipeline_args, total)
    write_mode = _write_mode(source, params, pipeline_options, after_state,
                             backup_location, no_backup)
    gate = _gate(job, params, pipeline_options, write_mode, skip_rehearsal, namespace,
                 no_backup, database)
    estimate = (estimate_for(job, models, source, pipeline_options, namespace).as_record()
                if options_lib.is_dataflow(pipeline_options) else {})
    return RunPlan(job, tuple(models), params, shard_count, pipeline_options,
                   source, write_mode, namespace, gate,
                   retry_of=retry_of.run_id if retry_of is not None else None,
                   estimate=estimate, budget=budget,
                   namespaces=tuple(namespaces) if namespaces else None, database=database)


def _gate(job: type, params: dict[str, Any], pipeline_options: PipelineOptions,
          write_mode: write_modes.WriteMode, skip: Optional[gate_lib.Skip],
          namespace: Optional[str], no_backup: bool,
          database: Optional[str]) -> dict[str, Any]:
    """What the production gate decides of this run (gate.check), asking the
    sign-off records and the runs where its production runs are recorded."""
    return gate_lib.check(
        job, params=params, is_dataflow=options_lib.is_dataflow(pipeline_options),
        changes_datastore=write_mode.changes_datastore, skip=skip,
        rehearsals=lambda: rehearsal_records.RehearsalStore(
            record_stores.signoff_target(namespace)),
        audit=lambda: audit_lib.AuditStore(record_stores.signoff_target(namespace)),
        runner=options_lib.runner_name(pipeline_options),
        project=pipeline_options.view_as(GoogleCloudOptions).project, namespace=namespace,
        no_backup=no_backup,
        runs_of=record_stores.production_runs(pipeline_options, namespace),
        database=database)


def _budget(pipeline_options: PipelineOptions, max_cost_usd: Optional[Any],
            flexrs: bool) -> dict[str, Any]:
    """A Dataflow run's guardrails, checked; a local run refuses them."""
    if options_lib.is_dataflow(pipeline_options):
        dataflow_settings.check(pipeline_options)
        return guardrails(pipeline_options, max_cost_usd, flexrs)
    if flexrs or max_cost_usd is not None:
        raise refusals.Refused('--flexrs and --max-cost-usd are for runs on Dataflow: add '
                               '--runner=DataflowRunner, or leave them out.')
    return {}


def _source(job: type, params: dict[str, Any], export: Optional[str],
            retry_of: Optional[runs.RunRecord]) -> sources.Source:
    """What the run reads: what a run left (`--retry-failed`), an export, or
    the Datastore."""
    if retry_of is None:
        return sources.for_run(export)
    if export:
        raise refusals.Refused('--retry-failed reads what a run left in the Datastore; '
                               'it does not go with --export.')
    return retry_source(retry_of, job, params)


def _write_mode(source: sources.Source, params: dict[str, Any],
                pipeline_options: PipelineOptions, after_state: Optional[str],
                backup_location: Optional[str], no_backup: bool) -> write_modes.WriteMode:
    """What becomes of the run's writes; where it keeps before-images,
    checked writable before anything runs."""
    if backup_location and no_backup:
        raise refusals.Refused('--backup_location and --no-backup contradict each other: '
                               'pass one of them.')
    write_mode = write_modes.decide(
        reads_export=source.reads_export, dry_run=bool(params.get('dry_run')),
        after_state=after_state, backup=None if no_backup else backup_root(
            pipeline_options, backup_location))
    if write_mode.keeps_before_images and write_mode.backup:
        before_images.check_writable(write_mode.backup)
    return write_mode


def _namespaces_read(source: sources.Source, requested: Sequence[str],
                     pipeline_options: PipelineOptions, records_namespace: Optional[str],
                     database: Optional[str]) -> tuple[str, ...]:
    """The namespaces a `--namespaces` run reads, checked against those its
    source holds (the Datastore's `__namespace__`, or the export's)."""
    if source.reads_export:
        where = target_lib.Target('-', None, database=database)
    elif options_lib.is_dataflow(pipeline_options):
        where = target_lib.Target.from_environment(
            pipeline_options.view_as(GoogleCloudOptions).project, None, database)
    else:
        where = dataclasses.replace(record_stores.local_target(records_namespace),
                                    namespace=None, database=database)
    return source.namespaces(requested, where)


def run_namespace(namespace: Optional[str] = None) -> Optional[str]:
    """The namespace a run reads: the one given, else DATASTORE_NAMESPACE."""
    return namespace or os.environ.get(target_lib.NAMESPACE_ENV) or None


def guardrails(pipeline_options: PipelineOptions, max_cost_usd: Optional[Any] = None,
               flexrs: bool = False) -> dict[str, Any]:
    """Check a Dataflow run's worker cap and budget, set FlexRS if asked;
    what its record keeps of them (`budget`: {'max_num_workers', 'flexrs',
    'max_cost_usd' (None: no budget), 'rates'}). The cap and the prices come
    from the flags or the settings (options.DEFAULT_SETTINGS: 20 workers)."""
    workers = pipeline_options.view_as(WorkerOptions)
    workers.max_num_workers = int(estimate_lib.positive(
        'max_num_workers', workers.max_num_workers))
    if flexrs:
        # Beam's own option: Dataflow schedules the job when capacity is
        # spare, at a discount, starting it up to hours later.
        pipeline_options.view_as(GoogleCloudOptions).flexrs_goal = 'COST_OPTIMIZED'
    if max_cost_usd is None:
        max_cost_usd = config.get(estimate_lib.BUDGET_SETTING)
    limit = (None if max_cost_usd in (None, '')
             else estimate_lib.positive('max_cost_usd', max_cost_usd))
    region = pipeline_options.view_as(GoogleCloudOptions).region
    rates = prices.rates_for(region, vcpu_price())
    if rates is None and limit is not None:
        raise estimate_lib.GuardrailError(
            f'A budget needs a price, and the price table has none for region '
            f'{region}: set {estimate_lib.VCPU_PRICE_SETTING} (USD per vCPU-hour).')
    return {'max_num_workers': workers.max_num_workers, 'flexrs': flexrs,
            'max_cost_usd': limit, 'rates': rates.as_dict() if rates else None}


def vcpu_price() -> Optional[float]:
    """The `vcpu_hour_usd` setting, when a team overrides the price table."""
    value = config.get(estimate_lib.VCPU_PRICE_SETTING)
    return None if value in (None, '') else estimate_lib.positive(
        estimate_lib.VCPU_PRICE_SETTING, value)


def estimate_for(job: type, models: Sequence[type[ndb.Model]], source: sources.Source,
                 pipeline_options: PipelineOptions,
                 namespace: Optional[str] = None) -> estimate_lib.Estimate:
    """What running `job` over `source` on Dataflow with these options would
    take and cost: the entities the source holds (an export's metadata, the
    Datastore's `__Stat_Kind__`), scaled by the CPU per entity the job's last
    rehearsal measured (or its last run that did)."""
    name = job_class_lib.job_name(job)
    if source.reads_export:
        entities = source.entity_total(models, namespace)
    else:
        cloud = pipeline_options.view_as(GoogleCloudOptions)
        counts = source.totals(models, target_lib.Target.from_environment(
            cloud.project, namespace)).values()
        known = [count for count in counts if count is not None]
        entities = sum(known) if len(known) == len(counts) else None
    records = record_stores.signoff_target(namespace)
    measurement = estimate_lib.last_measurement(
        name, rehearsal_records.RehearsalStore(records), runs.RunStore(records))
    workers = pipeline_options.view_as(WorkerOptions)
    return estimate_lib.estimate(
        name, entities, measurement, workers.max_num_workers,
        pipeline_options.view_as(GoogleCloudOptions).region,
        workers.machine_type, vcpu_price())


BACKUP_SETTING = 'backup_location'


def backup_root(pipeline_options: PipelineOptions,
                location: Optional[str] = None) -> str:
    """Where runs with these options keep before-images (each run in a
    folder of its own): `--backup_location`, else the `backup_location`
    setting, else the data folder here (.beam-jobs/backups) and, on
    Dataflow, gs://BUCKET/beam-jobs/backups in the temp_location's bucket,
    where the workers can write."""
    location = location or config.get(BACKUP_SETTING)
    on_dataflow = options_lib.is_dataflow(pipeline_options)
    if not location and on_dataflow:
        temp = pipeline_options.view_as(GoogleCloudOptions).temp_location or ''
        location = f'gs://{temp.split("/")[2]}/beam-jobs/backups' if temp.startswith(
            'gs://') else None
    if not location:
        location = str(emulator.home_dir() / 'backups')
    location = str(location)
    if '://' not in location:
        if on_dataflow:
            raise refusals.Refused(
                f'A Dataflow run\'s workers write its before-images, so the backup '
                f'location must be a gs:// path, not {location}: pass '
                '--backup_location gs://BUCKET/PATH (or set backup_location).')
        location = os.path.abspath(location)
    return location


def retry_source(original: runs.RunRecord, job: type,
                 params: Mapping[str, Any]) -> sources.DatastoreSource:
    """What a retry of `original` reads: the keys whose map failed (a run
    that completed), or what it had not written yet (one that failed or was
    canceled midway). Refuses a retry that would not finish that run."""
    name = job_class_lib.job_name(job)
    run_id = original.run_id
    if original.job_name != name or original.revert_of:
        raise refusals.Refused(f'Run {run_id} is a {"revert" if original.revert_of else "run"} '
                               f'of {original.job_name}, not of {name}: retry it with '
                               f'`beam-jobs run {original.job_name} --retry-failed {run_id}`.')
    if not original.is_terminal:
        raise refusals.Refused(f'Run {run_id} is still {original.status}: wait for it to '
                               f'end, or cancel it (`beam-jobs cancel {run_id}`), then retry.')
    if original.params.get('dry_run'):
        raise refusals.Refused(f'Run {run_id} was a dry run and wrote nothing: run the job '
                               'itself, not a retry.')
    ours = {k: v for k, v in params.items() if k != 'dry_run'}
    theirs = {k: v for k, v in original.params.items() if k != 'dry_run'}
    if ours != theirs:
        raise refusals.Refused(f'A retry runs with the params of run {run_id} '
                               f'({theirs or "none"}), not {ours or "none"}: pass the same '
                               '--param flags.')
    location = (original.backup or {}).get('location')
    if not location:
        raise refusals.Refused(f'Run {run_id} kept no before-images ({(original.backup or {}).get("reason") or "it wrote to no Datastore"}), '
                               'so what it finished is not known: run the whole job again.')
    if original.status == runs.COMPLETED:
        keys = before_images.failed_keys(location)
        if not keys:
            raise NothingLeftError(f'Run {run_id} completed with no failed items: '
                                   'nothing left to retry.')
        return sources.FailedKeysSource(run_id, keys)
    return sources.UnfinishedSource(run_id, location)
