"""What the console does, without HTTP: the pages and the JSON API both call this.

It reads the registry and the run and rehearsal records the CLI uses, and
acts through the same launcher: a start is checked by `launcher.plan_run`
and run by `beam-jobs run` in a process of its own (launch.py); a cancel is
`launcher.cancel_run`; an approval is `RehearsalStore.approve`. Every refusal
is a `ConsoleError` whose status says which kind of 4xx it is, raised before
anything changed.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from apache_beam.options.pipeline_options import GoogleCloudOptions

from beam_jobs import emulator
from beam_jobs import launcher
from beam_jobs import options as options_lib
from beam_jobs import registry as registry_lib
from beam_jobs import runs
from beam_jobs.console import launch
from beam_jobs.console import views
from beam_jobs.rehearsal import record as rehearsal_record

RUNS_SHOWN = 50
MAX_RUNS_SHOWN = 500


class ConsoleError(Exception):
    """A request the console refuses; `status` is its HTTP status."""

    status = 400


class BadRequest(ConsoleError):
    status = 400


class NotFound(ConsoleError):
    status = 404


class ServerError(ConsoleError):
    """Something on the console's side failed; the request was fine."""

    status = 500


class Conflict(ConsoleError):
    """The request is well formed, but the record's state forbids it."""

    status = 409


class Console:
    """The console's view of one project: its jobs, runs and rehearsals."""

    def __init__(self, registry: registry_lib.JobRegistry, store: runs.RunStore,
                 registry_module: Optional[str] = None):
        self.registry = registry
        self.store = store
        self.rehearsals = rehearsal_record.RehearsalStore(store.target)
        # Passed on to the runs it starts, so they find the same jobs. (The
        # loaded registry has checked its jobs, which is how a cancel finds
        # a job's cancel hooks: job_class.seen_job.)
        self.registry_module = registry_module

    # Where runs go

    def destination(self) -> dict[str, Any]:
        """Where a run started now would run and read, as configured."""
        target = self.store.target
        where = (f'project {target.project}'
                 f'{", namespace " + target.namespace if target.namespace else ""}')
        try:
            pipeline_options = options_lib.pipeline_options([])
        except ValueError as error:
            return {'type': 'error', 'text': f'Runs cannot start: {error}'}
        runner = options_lib.runner_name(pipeline_options)
        if options_lib.is_dataflow(pipeline_options):
            cloud = pipeline_options.view_as(GoogleCloudOptions)
            return {'type': 'dataflow', 'runner': runner, 'project': cloud.project,
                    'region': cloud.region,
                    'text': f'Dataflow ({runner}) in project {cloud.project}, '
                            f'region {cloud.region}; run records in the '
                            f'Datastore of {where}'}
        host = os.environ.get(emulator.EMULATOR_HOST_ENV)
        datastore = (f'the local Datastore emulator at {host}' if host
                     else 'the Datastore')
        return {'type': 'local', 'runner': runner, 'project': target.project,
                'namespace': target.namespace, 'emulator_host': host,
                'text': f'this machine ({runner}), on {datastore}, {where}'}

    # Jobs

    def jobs(self) -> list[dict[str, Any]]:
        unfinished: dict[str, list] = {}
        for record in self.store.unfinished():
            unfinished.setdefault(record.job_name, []).append(views.run_view(record))
        listed = []
        for job in self.registry:
            name = job.__name__
            last_run = self.store.recent(1, job_name=name)
            last_rehearsal = self.rehearsals.recent(1, job_name=name)
            notes = getattr(job, 'COORDINATOR_NOTES', None)
            listed.append({
                'name': name,
                'kinds': [model._get_kind()  # pylint: disable=protected-access
                          for model in job.entity_classes_to_map_over()],
                'coordinator_notes': notes if isinstance(notes, str) else None,
                'last_run': views.run_view(last_run[0]) if last_run else None,
                'last_rehearsal': (views.rehearsal_view(last_rehearsal[0])
                                   if last_rehearsal else None),
                'unfinished_runs': unfinished.get(name, []),
            })
        return listed

    # Runs

    def runs(self, limit: Any = RUNS_SHOWN, job: Optional[str] = None) -> list[dict]:
        try:
            limit = int(limit)
        except (TypeError, ValueError):
            raise BadRequest(f'limit must be a whole number, not {limit!r}.') from None
        if not 1 <= limit <= MAX_RUNS_SHOWN:
            raise BadRequest(f'limit must be between 1 and {MAX_RUNS_SHOWN}.')
        return [views.run_view(r) for r in self.store.recent(limit, job_name=job or None)]

    def run(self, run_id: str) -> runs.RunRecord:
        try:
            return self.store.get(run_id)
        except runs.UnknownRunError as error:
            raise NotFound(str(error)) from None

    def output(self, run_id: str) -> dict[str, Any]:
        record = self.run(run_id)
        return {'run_id': run_id, 'status': record.status,
                'finished': record.is_terminal,
                **views.output_view(self.store.output(run_id))}

    def plan_start(self, body: Any) -> tuple[launch.StartRequest, dict[str, Any]]:
        """Check a start request and say what it would do: the confirmation."""
        try:
            request = launch.check(body, self.registry, self.store.target.namespace)
        except launch.BadStartRequest as error:
            raise BadRequest(str(error)) from None
        return request, self._confirmation(request)

    def _confirmation(self, request: launch.StartRequest) -> dict[str, Any]:
        target = self.store.target
        where = (f'project {target.project}'
                 f'{", namespace " + target.namespace if target.namespace else ""}')
        if request.plan.is_dataflow:
            cloud = request.plan.pipeline_options.view_as(GoogleCloudOptions)
            goes = (f'Dataflow: project {cloud.project}, region {cloud.region} '
                    f'({request.plan.runner}). The run is submitted there and '
                    'followed from its record.')
        else:
            host = os.environ.get(emulator.EMULATOR_HOST_ENV)
            goes = (f'This machine ({request.plan.runner}), in a process of '
                    'its own, '
                    + (f'on the local Datastore emulator at {host}, {where}.'
                       if host else f'on the Datastore of {where}.'))
        kinds = ', '.join(request.kinds)
        if request.export:
            reads = f'the export {request.export} (kinds {kinds})'
        else:
            reads = f'kinds {kinds} from the Datastore of {where}'
        if request.dry_run:
            writes = ('Nothing: a dry run writes nothing; its output reports '
                      'what it would put or delete.')
        elif request.export:
            writes = ('Nothing to any Datastore: a run over an export reads '
                      'the export and writes only its run record and output.')
        else:
            writes = (f'It may put or delete entities of kinds {kinds} (and of '
                      'any other kind its map writes) in the Datastore of '
                      f'{where}. A dry run first shows what it would write.')
        warnings = [f'A run of {request.job_name} is already '
                    f'{views.STATUS_LABELS[r.status].lower()}: {r.run_id}.'
                    for r in self.store.unfinished(request.job_name)]
        return {'job': request.job_name, 'params': request.params,
                'shard_count': request.plan.shard_count,
                'dry_run': request.dry_run, 'export': request.export,
                'destination': goes, 'reads': reads, 'writes': writes,
                'warnings': warnings}

    def start(self, body: Any) -> runs.RunRecord:
        """Create the run's record and start it in a process of its own."""
        request, _ = self.plan_start(body)
        record = self.store.create(request.job_name)
        argv = launch.command(request, record.run_id, self.registry_module,
                              self.store.target.namespace)
        try:
            launch.start(argv, self.store, record.run_id)
        except OSError as error:
            self.store.transition(record.run_id, runs.FAILED,
                                  error=f'Could not start its process: {error}.')
            raise ServerError(f'Could not start the run\'s process ({error}): '
                               'check the console\'s Python and its logs folder.'
                               ) from None
        return record

    def cancel(self, run_id: str, user: Any = None) -> runs.RunRecord:
        if user is not None and not isinstance(user, str):
            raise BadRequest('"user" must be text: the name recorded as who canceled.')
        record = self.run(run_id)
        if record.is_terminal:
            raise Conflict(f'Run {run_id} already ended ({record.status}); '
                           'nothing to cancel.')
        try:
            return launcher.cancel_run(self.store, run_id, (user or '').strip() or None)
        except runs.InvalidTransitionError as error:
            raise Conflict(str(error)) from None

    # Rehearsals

    def rehearsal_list(self, limit: int = RUNS_SHOWN) -> list[dict[str, Any]]:
        return [views.rehearsal_view(r) for r in self.rehearsals.recent(limit)]

    def rehearsal(self, rehearsal_id: str) -> rehearsal_record.RehearsalRecord:
        try:
            return self.rehearsals.get(rehearsal_id)
        except rehearsal_record.UnknownRehearsalError as error:
            raise NotFound(str(error)) from None

    def approve(self, rehearsal_id: str, body: Any) -> rehearsal_record.RehearsalRecord:
        if not isinstance(body, dict):
            raise BadRequest('The request body must be a JSON object: '
                             '{"user": "your name", "note": "why"}.')
        user, note = body.get('user'), body.get('note')
        if not isinstance(user, str) or not user.strip():
            raise BadRequest('An approval needs the approver\'s name: give "user".')
        if note is not None and not isinstance(note, str):
            raise BadRequest('"note" must be text.')
        self.rehearsal(rehearsal_id)
        try:
            return self.rehearsals.approve(rehearsal_id, user, note)
        except rehearsal_record.ApprovalError as error:
            raise Conflict(str(error)) from None
        except rehearsal_record.UnknownRehearsalError as error:
            raise NotFound(str(error)) from None
