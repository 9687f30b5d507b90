"""A revert planned: a run of its own that puts a run's before-images back.

`plan_revert` checks what can be refused before anything is written (an
unknown run, one still running, a dry run, one that kept no before-images
or wrote nothing, a backup whose manifest or files are missing or damaged)
and returns a RunPlan like any run's: the launcher starts it under its own
record (`revert_of` names the run), on the same runner choice as any run,
its writes keeping before-images of their own (so a revert can be reverted),
and the production gate lets it through without a rehearsal, audited with
who and why. Its steps are compile/revert_steps.py.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from apache_beam.options.pipeline_options import GoogleCloudOptions

from beam_jobs import identity
from beam_jobs import options as options_lib
from beam_jobs import refusals
from beam_jobs import target as target_lib
from beam_jobs.compile.revert_steps import RevertSteps
from beam_jobs.io import before_images
from beam_jobs.io import sources
from beam_jobs.io import write_modes
from beam_jobs.lifecycle import dataflow_settings
from beam_jobs.lifecycle import gate as gate_lib
from beam_jobs.lifecycle import planning
from beam_jobs.lifecycle import record_stores
from beam_jobs.records import audit as audit_lib
from beam_jobs.records import rehearsals as rehearsal_records
from beam_jobs.records import runs

COMMAND = 'beam-jobs revert'


class RevertError(refusals.Refused):
    """A revert that cannot be done as asked (one sentence: what, where)."""


class BackupSource:
    """What a revert reads: a run's backup (a RunPlan's `source`)."""

    reads_export = False
    label = 'Read backup'

    def __init__(self, manifest: before_images.Manifest):
        self.manifest = manifest

    def describe(self, target: target_lib.Target) -> dict[str, Any]:
        described: dict[str, Any] = {
            'type': 'backup', 'path': self.manifest.location,
            'revert_of': self.manifest.run_id, 'writes': self.manifest.writes,
            'project': target.project, 'namespace': target.namespace}
        if target.database:
            described['database'] = target.database
        return described

    def totals(self, models: sources.Models, target: target_lib.Target,
               namespaces: Optional[Sequence[str]] = None) -> dict[str, Optional[int]]:
        return {}

    def reads_text(self, kinds: str, where: str) -> str:
        return f'the backup of run {self.manifest.run_id} at {self.manifest.location}'


def _job_named(name: str, lookup: Callable[[str], type]) -> type:
    """The job class of that name; a stand-in named as it if its code is
    gone (a revert must work after the job's code was rolled back)."""
    try:
        return lookup(name)
    except Exception:  # pylint: disable=broad-except
        return type(name, (), {'__doc__': f'{name} (its code is not registered here)'})


def check_revertible(original: runs.RunRecord) -> before_images.Manifest:
    """The manifest of the backup of `original`, verified; or RevertError."""
    run_id = original.run_id
    if not original.is_terminal:
        raise RevertError(f'Run {run_id} is still {original.status}: wait for it to '
                          f'end, or cancel it (`beam-jobs cancel {run_id}`), then revert.')
    if original.params.get('dry_run'):
        raise RevertError(f'Run {run_id} was a dry run: it wrote nothing, so there is '
                          'nothing to revert.')
    backup = original.backup or {}
    if backup.get('state') == 'off':
        raise RevertError(f'Run {run_id} kept no before-images ({backup.get("reason")}): '
                          'it can only be undone from a Datastore backup.')
    if not backup.get('location'):
        raise RevertError(f'Run {run_id} wrote to no Datastore (its source: '
                          f'{(original.source or {}).get("type", "?")}), so there is '
                          'nothing to revert.')
    if backup.get('state') != 'kept':
        # Its end could not write the manifest (say, no access to the bucket
        # where it was followed from): written now, from the keys files.
        before_images.finish(backup['location'], run_id, original.job_name,
                             (original.source or {}).get('project'),
                             (original.source or {}).get('namespace'), original.status)
    manifest = before_images.read_manifest(backup['location'])
    if not manifest.writes:
        raise RevertError(f'Run {run_id} wrote nothing (its backup at '
                          f'{manifest.location} lists no writes): nothing to revert.')
    before_images.verify(manifest)
    return manifest


def plan_revert(store: runs.RunStore, run_id: str, *, job_lookup: Callable[[str], type],
                dry_run: bool = False, force: bool = False,
                reason: Optional[str] = None, user: Optional[str] = None,
                pipeline_args: Sequence[str] = (), own_flags: Sequence[str] = (),
                backup_location: Optional[str] = None,
                no_backup: bool = False) -> planning.RunPlan:
    """A revert of run `run_id` (of `store`), checked; raises to refuse."""
    original = store.get(run_id)
    manifest = check_revertible(original)
    pipeline_options = options_lib.pipeline_options(pipeline_args, own_flags, COMMAND)
    on_dataflow = options_lib.is_dataflow(pipeline_options)
    if on_dataflow:
        dataflow_settings.check(pipeline_options)
    namespace = manifest.namespace or None
    write_mode = write_modes.decide(
        reads_export=False, dry_run=dry_run,
        backup=None if no_backup else planning.backup_root(pipeline_options, backup_location))
    if write_mode.keeps_before_images and write_mode.backup:
        before_images.check_writable(write_mode.backup)
    job = _job_named(original.job_name, job_lookup)
    params = {'revert_of': run_id, **({'force': True} if force else {}),
              **({'dry_run': True} if dry_run else {})}
    gate = gate_lib.check(
        job, params=params, is_dataflow=on_dataflow,
        changes_datastore=write_mode.changes_datastore, skip=None,
        rehearsals=lambda: rehearsal_records.RehearsalStore(
            record_stores.signoff_target(namespace)),
        audit=lambda: audit_lib.AuditStore(record_stores.signoff_target(namespace)),
        runner=options_lib.runner_name(pipeline_options),
        project=pipeline_options.view_as(GoogleCloudOptions).project,
        namespace=namespace, no_backup=no_backup,
        database=(original.source or {}).get('database') or None,
        revert=gate_lib.Revert(run_id, user or identity.machine_user(), reason))
    keys_files = [before_images.keys_path(manifest.location, name)
                  for name in manifest.chunks]

    def steps(target: target_lib.Target, mode: write_modes.WriteMode) -> RevertSteps:
        return RevertSteps(manifest.location, run_id, keys_files, target, mode, force)

    # Put back where the run wrote: its database.
    database = (original.source or {}).get('database') or None
    return planning.RunPlan(
        job, (), params, 1, pipeline_options, BackupSource(manifest), write_mode,
        namespace, gate, revert_of=run_id, steps=steps, database=database)
