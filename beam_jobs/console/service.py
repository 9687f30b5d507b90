"""What the console does, without HTTP: the pages and the JSON API both call this.

It reads the registry and the run and rehearsal records the CLI uses, and
acts through the same lifecycle: a start is planned by `planning.plan_run`
and run by `beam-jobs run` in a process of its own (launch.py); runs are
read as they are now (`follow.current`, which polls a Dataflow job); a
cancel is `launcher.cancel_run`; an approval is `RehearsalStore.approve`. Every refusal
is a `refusals.Refused`, the console's own as much as the lifecycle's, raised
before anything changed; app.py answers each with the 4xx of its kind.
"""

from __future__ import annotations

import functools
from typing import Any, Optional

from apache_beam.options.pipeline_options import GoogleCloudOptions

from beam_jobs import config
from beam_jobs import job_class as job_class_lib
from beam_jobs import options as options_lib
from beam_jobs import refusals
from beam_jobs import registry as registry_lib
from beam_jobs import signing
from beam_jobs import target as target_lib
from beam_jobs.console import launch
from beam_jobs.console import views
from beam_jobs.lifecycle import estimate as estimate_lib
from beam_jobs.lifecycle import follow
from beam_jobs.lifecycle import gate as gate_lib
from beam_jobs.lifecycle import launcher
from beam_jobs.lifecycle import record_stores
from beam_jobs.lifecycle import revert as revert_lib
from beam_jobs.records import audit as audit_lib
from beam_jobs.records import rehearsals as rehearsal_record
from beam_jobs.records import requests as request_records
from beam_jobs.records import runs
from beam_jobs.records.runs import RunRecord
from beam_jobs.rehearsal import rehearse as rehearse_lib
from beam_jobs.rehearsal import release_plan
from beam_jobs.rehearsal import signoff

RUNS_SHOWN = 50
MAX_RUNS_SHOWN = 500


# The console's names for the kinds of refusal (refusals.py).
BadRequest = refusals.Refused
NotFound = refusals.NotFound
Forbidden = refusals.NotAllowed
Conflict = refusals.Conflict


class ServerError(Exception):
    """Something on the console's side failed; the request was fine."""

    status = 500


class Console:
    """The console's view of one project: its jobs, runs and rehearsals."""

    def __init__(self, registry: registry_lib.JobRegistry, store: runs.RunStore,
                 registry_module: Optional[str] = None):
        self.registry = registry
        self.store = store
        # Rehearsals, requests, approvals and the audit: the team's records
        # when shared (`records_project`), else beside the run records.
        self.signoff_target = record_stores.signoff_target_beside(store.target)
        self.rehearsals = rehearsal_record.RehearsalStore(self.signoff_target)
        # Passed on to the runs it starts, so they find the same jobs. (The
        # loaded registry has checked its jobs, which is how a cancel finds
        # a job's cancel hooks: job_class.seen_job.)
        self.registry_module = registry_module

    # Where runs go

    def destination(self) -> dict[str, Any]:
        """Where a run started now would run and read, as configured."""
        target = self.store.target
        where = target.describe()
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
        host = target_lib.emulator_host()
        datastore = (f'the local Datastore emulator at {host}' if host
                     else 'the Datastore')
        return {'type': 'local', 'runner': runner, 'project': target.project,
                'namespace': target.namespace, 'database': target.database,
                'emulator_host': host,
                'text': f'this machine ({runner}), on {datastore}, {where}'}

    # Jobs

    def jobs(self) -> list[dict[str, Any]]:
        unfinished: dict[str, list] = {}
        for record in follow.unfinished(self.store):
            unfinished.setdefault(record.job_name, []).append(views.run_view(record))
        listed = []
        for job in self.registry:
            name = job.__name__
            last_run = follow.recent(self.store, 1, job_name=name)
            last_rehearsal = self.rehearsals.recent(1, job_name=name)
            notes = getattr(job, 'COORDINATOR_NOTES', None)
            listed.append({
                'name': name,
                'kinds': job_class_lib.kinds(job),
                'coordinator_notes': notes if isinstance(notes, str) else None,
                'last_run': views.run_view(last_run[0]) if last_run else None,
                'last_rehearsal': (views.rehearsal_view(last_rehearsal[0])
                                   if last_rehearsal else None),
                'unfinished_runs': unfinished.get(name, []),
            })
        return listed

    # Runs

    def runs(self, limit: Any = RUNS_SHOWN, job: Optional[str] = None) -> list[dict]:
        limit = _limit(limit)
        return [views.run_view(r)
                for r in follow.recent(self.store, limit, job_name=job or None)]

    def run(self, run_id: str) -> RunRecord:
        """The run as it is now (followed by its backend)."""
        return follow.current(self.store, run_id)

    def output(self, run_id: str, record: Optional[RunRecord] = None) -> dict[str, Any]:
        record = record or self.run(run_id)
        return {'run_id': run_id, 'status': record.status,
                'finished': record.is_terminal,
                **views.output_view(self.store.stored_output(run_id))}

    def plan_start(self, body: Any) -> tuple[launch.StartRequest, dict[str, Any]]:
        """Check a start request and say what it would do: the confirmation."""
        request = launch.check(body, self.registry, self.store.target.namespace,
                               record_of=self.store.get)
        return request, self._confirmation(request)

    def _confirmation(self, request: launch.StartRequest) -> dict[str, Any]:
        """Where the planned run goes, what it reads and what it may write,
        as its plan says."""
        plan = request.plan
        where = self.store.target.describe()
        if plan.is_dataflow:
            cloud = plan.pipeline_options.view_as(GoogleCloudOptions)
            goes = (f'Dataflow: project {cloud.project}, region {cloud.region} '
                    f'({plan.runner}). The run is submitted there and '
                    'followed from its record.')
        else:
            host = target_lib.emulator_host()
            goes = (f'This machine ({plan.runner}), in a process of its own, '
                    + (f'on the local Datastore emulator at {host}, {where}.'
                       if host else f'on the Datastore of {where}.'))
        kinds = ', '.join(plan.kinds)
        warnings = [f'A run of {request.job_name} is already '
                    f'{views.STATUS_LABELS[r.status].lower()}: {r.run_id}.'
                    for r in follow.unfinished(self.store, request.job_name)]
        # A Dataflow run's estimate and guardrails, as `run` prints them.
        warnings += plan.estimate.get('warnings') or []
        return {'job': request.job_name, 'params': request.params,
                'shard_count': plan.shard_count,
                'dry_run': request.dry_run, 'export': request.export,
                'destination': goes, 'reads': plan.source.reads_text(kinds, where),
                'writes': plan.write_mode.describe(kinds, where),
                'estimate': estimate_lib.figures_text(plan.estimate),
                'estimate_assumptions': plan.estimate.get('assumptions'),
                'guardrails': plan.guardrails,
                'warnings': warnings}

    def start(self, body: Any) -> RunRecord:
        """Create the run's record and start it in a process of its own."""
        request, _ = self.plan_start(body)
        record = self.store.create(request.job_name)
        argv = launch.command(request, record.run_id, self.registry_module,
                              self.store.target.namespace)
        try:
            launch.start(argv, self.store, record.run_id)
        except OSError as error:
            launcher.end_unstarted(self.store, record.run_id,
                                   f'Could not start its process: {error}.')
            raise ServerError(f'Could not start the run\'s process ({error}): '
                               'check the console\'s Python and its logs folder.'
                               ) from None
        return record

    def revert(self, run_id: str, body: Any, signed_in: Optional[str]) -> RunRecord:
        """Check a revert of `run_id` as `beam-jobs revert` would, then start
        it in a process of its own under a record of its own."""
        if not isinstance(body, dict) or set(body) - {'dry_run', 'force', 'reason', 'user'}:
            raise BadRequest('The request body must be a JSON object such as '
                             '{"dry_run": true} or {"force": false, "reason": "why"}.')
        flags = {name: body.get(name, False) for name in ('dry_run', 'force')}
        if not all(isinstance(value, bool) for value in flags.values()):
            raise BadRequest('"dry_run" and "force" must be true or false.')
        reason = self._text(body, 'reason', required=False)
        user = signed_in or self._text(body, 'user', required=False)
        self.run(run_id)   # an unknown run is a 404
        plan = revert_lib.plan_revert(self.store, run_id, job_lookup=self.registry.get,
                                      reason=reason, user=user, **flags)
        record = self.store.create(plan.job_name)
        argv = launch.revert_command(run_id, record.run_id, reason=reason, user=user,
                                     registry_module=self.registry_module,
                                     namespace=self.store.target.namespace, **flags)
        try:
            launch.start(argv, self.store, record.run_id)
        except OSError as error:
            launcher.end_unstarted(self.store, record.run_id,
                                   f'Could not start its process: {error}.')
            raise ServerError(f'Could not start the revert\'s process ({error}).') from None
        return record

    def cancel(self, run_id: str, user: Any = None,
               signed_in: Optional[str] = None) -> RunRecord:
        """Cancel as `signed_in` when the console knows who that is; the
        name a body gives counts only where it knows nobody (a shared token)."""
        if user is not None and not isinstance(user, str):
            raise BadRequest('"user" must be text: the name recorded as who canceled.')
        user = signed_in or user
        record = self.run(run_id)
        if record.is_terminal:
            raise Conflict(f'Run {run_id} already ended ({record.status}); '
                           'nothing to cancel.')
        return launcher.cancel_run(self.store, run_id, (user or '').strip() or None)

    # Rehearsals

    def rehearsal_list(self, limit: int = RUNS_SHOWN) -> list[dict[str, Any]]:
        return [views.rehearsal_view(self._taken_on(r))
                for r in self.rehearsals.recent(limit)]

    def rehearsal(self, rehearsal_id: str) -> rehearsal_record.RehearsalRecord:
        return self._taken_on(self.rehearsals.get(rehearsal_id))

    def cancel_rehearsal(self, rehearsal_id: str, body: Any,
                         signed_in: Optional[str]) -> rehearsal_record.RehearsalRecord:
        """Stop a running rehearsal as the CLI's `cancel REHEARSAL_ID` does:
        the run in flight is canceled (on Dataflow, its job) and it ends
        failed, saying who (the signed-in name; a body's only where the
        console knows nobody)."""
        user = self._text(body, 'user', required=False)
        user = signed_in or (user or '').strip() or None
        record = self.rehearsal(rehearsal_id)
        if not record.is_running:
            raise Conflict(f'Rehearsal {rehearsal_id} already ended ({record.verdict}); '
                           'nothing to cancel.')
        context = rehearse_lib.context_for(record, self.registry.get)
        if context is None:
            raise Conflict(f'Rehearsal {rehearsal_id} runs on {record.machine}, on its own '
                           'emulator: cancel it there (beam-jobs cancel, or Ctrl-C where '
                           'it runs).')
        return rehearse_lib.cancel(context, rehearsal_id, user)

    def _taken_on(self, record: rehearsal_record.RehearsalRecord):
        """A running rehearsal on Dataflow, taken on as far as its runs
        allow, as the console follows runs."""
        return rehearse_lib.take_on(record, self.registry.get)

    # Sign-off: who acts is the signed-in user, never a name in the body.

    def may_sign(self, user: Optional[str]) -> dict[str, Any]:
        """Whether `user` may approve, reject and withdraw here, and why not."""
        names = gate_lib.approvers()
        if not user:
            return {'allowed': False, 'user': None, 'approvers': names,
                    'why': 'This console does not know who you are: approvals need a '
                           'named sign-in (serve it with --users FILE).'}
        if names is not None and user not in names:
            return {'allowed': False, 'user': user, 'approvers': names,
                    'why': f'Only the named approvers ({", ".join(names)}) may sign off.'}
        return {'allowed': True, 'user': user, 'approvers': names, 'why': None}

    @staticmethod
    def _text(body: Any, name: str, required: bool) -> Optional[str]:
        if not isinstance(body, dict):
            raise BadRequest(f'The request body must be a JSON object: {{"{name}": "…"}}.')
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f'"{name}" must be text.')
        if required and not (value or '').strip():
            raise BadRequest(f'Give "{name}": it is recorded.')
        return value

    @staticmethod
    def _from_console(action):
        """A sign-off action, as made in the console (marked so; unsigned)."""
        return functools.partial(action, via='console')

    def _sign(self, action, user: Optional[str], record_id: str, text: Optional[str]):
        """`action(target, record_id, user, text)` as `user`."""
        if not user:
            raise Forbidden(self.may_sign(user)['why'])
        try:
            return action(self.signoff_target, record_id, user, text)
        except signing.SignatureError as error:
            # A signature that cannot be made or checked here: the request
            # is fine, the keys and the records disagree.
            raise Conflict(str(error)) from None

    def approve(self, rehearsal_id: str, body: Any,
                user: Optional[str]) -> rehearsal_record.RehearsalRecord:
        note = self._text(body, 'note', required=False)
        return self._sign(self._from_console(signoff.approve), user, rehearsal_id, note)

    def withdraw(self, rehearsal_id: str, body: Any,
                 user: Optional[str]) -> rehearsal_record.RehearsalRecord:
        reason = self._text(body, 'reason', required=True)
        return self._sign(self._from_console(signoff.withdraw), user, rehearsal_id, reason)

    # Requests and the audit trail

    def requests(self, job: Optional[str] = None) -> list[dict[str, Any]]:
        return [views.request_view(r) for r in request_records.RequestStore(
            self.signoff_target).oldest_first(None, job or None)]

    def request(self, request_id: str) -> dict[str, Any]:
        return views.request_view(
            request_records.RequestStore(self.signoff_target).get(request_id))

    def reject(self, request_id: str, body: Any, user: Optional[str]) -> dict[str, Any]:
        note = self._text(body, 'note', required=True)
        return views.request_view(self._sign(self._from_console(signoff.reject), user,
                                             request_id, note))

    def release_plan(self, project: Optional[str] = None) -> dict[str, Any]:
        """The jobs to run in production, in order, with the gate's verdict
        now against `project` (default: the configured Dataflow project)."""
        project = project or (self.destination().get('project')
                              if self.destination().get('type') == 'dataflow' else None) \
            or config.get('project')
        namespace = self.store.target.namespace
        planned = release_plan.build(self.signoff_target, self.registry.get,
                                     record_stores.production_runs_of(project, namespace),
                                     project, namespace)
        return {'project': project, 'namespace': namespace,
                'jobs': [views.planned_view(p) for p in planned]}

    def audit(self, job: Optional[str] = None, limit: Any = RUNS_SHOWN) -> list[dict[str, Any]]:
        return [views.decision_view(d) for d in audit_lib.AuditStore(
            self.signoff_target).newest_first(_limit(limit), job or None)]


def _limit(limit: Any) -> int:
    """A `?limit=` of records to list, checked."""
    try:
        limit = int(limit)
    except (TypeError, ValueError):
        raise BadRequest(f'limit must be a whole number, not {limit!r}.') from None
    if not 1 <= limit <= MAX_RUNS_SHOWN:
        raise BadRequest(f'limit must be between 1 and {MAX_RUNS_SHOWN}.')
    return limit
