"""Rehearse a job: the production guide's checks as one command.

1. The job runs over an export for real: its writes go to an after state
   (export/after_state.py), never to a Datastore.
2. Each verify job (an audit or validation job) runs over the after state;
   it passes when its output has no failed item and no error line.
3. With an expected-output file, the job's output is checked against it.
4. Everything is kept in a rehearsal record, with a verdict and its reasons.

Everything that can be refused is refused before anything runs or is
recorded, as for a run (`planning.plan_run`), and the plans say what each run
reads and where its writes go; what a line of output is (a failed item, an
error line) is the stored output's to say (output_format.py).

A rehearsal runs where its runs run: on this machine, or on Dataflow
(`--runner=DataflowRunner`, an export and an after state on Cloud Storage).
Either way it is a sequence of steps kept in its record (the job's run, each
verify job's run in turn, the verdict), and `advance` takes it on from where
the record stands once the run it waits for has ended. A local rehearsal
goes through them in one go; one on Dataflow is taken on by whoever reads it
next (the command that started it while it waits, `beam-jobs rehearsal ID`,
the console), so it survives the machine that started it going away. Each
step is claimed in the record by a transaction, so two readers never start
the same run twice.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from apache_beam.options.pipeline_options import GoogleCloudOptions

from beam_jobs import emulator
from beam_jobs import identity
from beam_jobs import options as options_lib
from beam_jobs import output_format
from beam_jobs import refusals
from beam_jobs.export import after_state as after_state_lib
from beam_jobs.lifecycle import code_version
from beam_jobs.lifecycle import ending
from beam_jobs.lifecycle import estimate as estimate_lib
from beam_jobs.lifecycle import launcher
from beam_jobs.lifecycle import planning
from beam_jobs.records import rehearsals as record_lib
from beam_jobs.records import requests as request_records
from beam_jobs.records import runs
from beam_jobs.records.store import now_msec
from beam_jobs.rehearsal import expect as expect_lib
from beam_jobs.rehearsal import signoff

REHEARSE_COMMAND = 'beam-jobs rehearse'


class RehearsalError(refusals.Refused):
    """A rehearsal that cannot run as asked: bad input, said in one sentence."""


@dataclasses.dataclass
class RehearsalPlan:
    """A rehearsal that passed every check before it runs."""

    rehearsal_id: str
    job: type
    export: str
    job_plan: planning.RunPlan
    verify_plans: list
    expected_text: Optional[str]
    expect_file: Optional[str]
    pipeline_args: list
    namespace: Optional[str]
    request_id: Optional[str] = None
    # The jobs it must follow in production (`follows` of its record).
    follows: list = dataclasses.field(default_factory=list)

    @property
    def after_dir(self) -> str:
        return self.job_plan.write_mode.after_state


def default_after_dir(rehearsal_id: str, temp_location: Optional[str] = None) -> str:
    """Under .beam-jobs/rehearsals/ here; on Dataflow, in the bucket of its
    temp_location (gs://BUCKET/rehearsals/ID/after)."""
    if temp_location:
        bucket = temp_location.split('/')[2]
        return f'gs://{bucket}/rehearsals/{rehearsal_id}/after'
    return str(emulator.home_dir() / 'rehearsals' / rehearsal_id / 'after')


def _check_places(export: str, after_dir: Optional[str], on_dataflow: bool) -> None:
    if not export:
        raise RehearsalError('A rehearsal runs over a copy of production data: '
                             'pass --export PATH (see `beam-jobs export`).')
    if on_dataflow:
        for what, path in (('export', export), ('after state', after_dir)):
            if path and not path.startswith('gs://'):
                raise RehearsalError(
                    f'A rehearsal on Dataflow reads and writes Cloud Storage, where its '
                    f'workers are: the {what} {path} is not a gs:// path. Copy the '
                    'export to a bucket (`gsutil -m cp -r`), or rehearse here '
                    'without --runner=DataflowRunner.')
    elif after_dir and '://' not in after_dir and os.path.exists(after_dir) \
            and os.listdir(after_dir):
        raise RehearsalError(f'The after state folder {after_dir} is not empty: '
                             'pass a new folder, or leave --after out.')


def plan(job: type, export: str, params: Optional[Mapping[str, Any]] = None,
         shard_count: Optional[int] = None, verify: Sequence[type] = (),
         expect_file: Optional[str] = None, pipeline_args: Sequence[str] = (),
         after_dir: Optional[str] = None,
         namespace: Optional[str] = None,
         own_flags: Sequence[str] = (),
         request: Optional[request_records.RequestRecord] = None,
         expect_text: Optional[str] = None) -> RehearsalPlan:
    """Check a rehearsal before anything runs. With `request`, the request's
    job is rehearsed as asked (its verify jobs, params and expected output
    come in `verify`, `params` and `expect_text`); it must be open or
    rehearsed, not rejected or approved already."""
    if request is not None and request.state in (request_records.REJECTED,
                                                  request_records.APPROVED):
        raise RehearsalError(f'Request {request.request_id} is {request.state}: '
                             'ask its author for a new request.')
    pipeline_options = options_lib.pipeline_options(pipeline_args, own_flags,
                                                    REHEARSE_COMMAND)
    on_dataflow = options_lib.is_dataflow(pipeline_options)
    _check_places(export, after_dir, on_dataflow)
    rehearsal_id = record_lib.RehearsalStore.new_id(job.__name__)
    temp_location = (pipeline_options.view_as(GoogleCloudOptions).temp_location
                     if on_dataflow else None)
    job_plan = planning.plan_run(
        job, params, shard_count, pipeline_args, export=export, namespace=namespace,
        after_state=after_dir or default_after_dir(rehearsal_id, temp_location),
        own_flags=own_flags, command=REHEARSE_COMMAND)
    # Checked against the export now; each runs over the after state later.
    verify_plans = [planning.plan_run(check, {}, None, pipeline_args, export=export,
                                      namespace=namespace, command=REHEARSE_COMMAND)
                    for check in verify]
    if expect_text is None and expect_file:
        expect_text = expect_lib.read(expect_file)
    if expect_text is not None:
        expect_lib.parse_text(expect_text, expect_file or 'the request')
    follows = followed(job_plan.source, rehearsal_store=lambda: record_lib.RehearsalStore(
        planning.signoff_target(namespace)))
    follows += [{'job': name} for name in (request.follows if request else [])
                if name not in {item['job'] for item in follows}]
    return RehearsalPlan(rehearsal_id, job, export, job_plan, verify_plans, expect_text,
                         expect_file, list(pipeline_args), namespace,
                         request.request_id if request else None, follows)


def followed(source, rehearsal_store: Callable[[], record_lib.RehearsalStore]) -> list[dict]:
    """The jobs whose writes a rehearsal over an after state reads, oldest
    first: each after state of the chain names its job and run; the rehearsal
    that run belongs to is looked up among that job's rehearsals."""
    layer = getattr(source, 'after', None)
    chain = []
    while layer is not None:
        chain.insert(0, layer)
        layer = (after_state_lib.read(layer.base)
                 if after_state_lib.is_after_state(layer.base) else None)
    follows = []
    for state in chain:
        if not state.job_name:
            continue
        found = next((r.rehearsal_id for r in rehearsal_store().recent(50, state.job_name)
                      if r.run_id == state.run_id), None)
        follows.append({'job': state.job_name, 'rehearsal_id': found})
    return follows


# Starting.

@dataclasses.dataclass
class Context:
    """What taking a rehearsal on needs: its record store, the store of its
    runs, the job classes of its verify jobs (`find_job`: the registry's
    `get`), what to say and what to wait with."""

    rehearsals: record_lib.RehearsalStore
    runs: runs.RunStore
    find_job: Callable[[str], type]
    say: Callable[[str], None] = lambda line: None
    listeners: Sequence = ()


def rehearse(rehearsal: RehearsalPlan, run_store: runs.RunStore,
             say: Callable[[str], None] = print, listeners: Sequence = (),
             wait: Optional[Callable[[runs.RunStore, runs.RunRecord], runs.RunRecord]] = None,
             ) -> record_lib.RehearsalRecord:
    """Start a planned rehearsal and take it as far as it goes: to its
    verdict here; on Dataflow, while `wait` (a function that follows a run
    until it ends, or returns early when the user stops waiting) waits for
    each run. Returns its record, ended or still running."""
    job_plan = rehearsal.job_plan
    # Published where the team's sign-off lives; its runs stay where they ran.
    store = record_lib.RehearsalStore(planning.signoff_target(run_store.target.namespace))
    record = store.create(
        job_plan.job_name, rehearsal_id=rehearsal.rehearsal_id,
        code_version=code_version.of(rehearsal.job, job_plan.params),
        export=job_plan.source.describe(run_store.target),
        params=job_plan.params, shard_count=job_plan.shard_count,
        coordinator_notes=getattr(rehearsal.job, 'COORDINATOR_NOTES', None),
        request_id=rehearsal.request_id, follows=rehearsal.follows,
        rehearsed_by=identity.machine_user(),
        machine=identity.machine(),
        runner=job_plan.runner if job_plan.is_dataflow else None,
        resume={'verify': [p.job_name for p in rehearsal.verify_plans],
                'expected_text': rehearsal.expected_text,
                'expect_file': rehearsal.expect_file,
                'pipeline_args': rehearsal.pipeline_args,
                'namespace': rehearsal.namespace,
                'base': job_plan.source.path,
                'after_dir': rehearsal.after_dir})
    say(f'Rehearsal ID: {record.rehearsal_id}')
    if job_plan.is_dataflow:
        for line in estimate_lib.before_submitting(job_plan.estimate, job_plan.budget):
            say(line)
    known = {p.job_name: p.job for p in rehearsal.verify_plans}
    context = Context(store, run_store, known.__getitem__, say, listeners)
    run = run_store.create(job_plan.job_name)
    run_store.update(run.run_id, rehearsal_id=record.rehearsal_id)   # linked both ways
    store.change(record.rehearsal_id, lambda r: setattr(r, 'run_id', run.run_id))
    try:
        _start(context, job_plan, run.run_id)
        return drive(context, record.rehearsal_id, wait)
    except BaseException as error:
        # Ctrl-C, a lost Datastore, a refusal from Dataflow: the rehearsal
        # ends with the reason, never left running for nobody.
        fail(context, record.rehearsal_id,
             'Stopped by Ctrl-C.' if isinstance(error, KeyboardInterrupt)
             else f'It stopped: {error}')
        raise


def _start(context: Context, plan: planning.RunPlan, run_id: str) -> runs.RunRecord:
    """A local run runs to its end here; a Dataflow run is submitted."""
    record = launcher.start(plan, context.runs, run_id, listeners=context.listeners)
    if plan.is_dataflow:
        context.say(f'{plan.job_name}: submitted to Dataflow as run {run_id}'
                    + (f' ({record.console_url})' if record.console_url else ''))
    return record


def drive(context: Context, rehearsal_id: str,
          wait: Optional[Callable[[runs.RunStore, runs.RunRecord], runs.RunRecord]] = None,
          ) -> record_lib.RehearsalRecord:
    """`advance` until the verdict, waiting with `wait` for each run in
    flight; the record as it stands when the verdict is in, or when `wait`
    came back before its run ended (the user stopped waiting)."""
    while True:
        record = advance(context, rehearsal_id)
        in_flight = record.in_flight_run
        if not in_flight or wait is None:
            return record
        run = wait(context.runs, context.runs.get(in_flight))
        if not run.is_terminal:
            return context.rehearsals.get(rehearsal_id)


# Taking it on.

def context_for(record: record_lib.RehearsalRecord, find_job: Callable[[str], type],
                say: Callable[[str], None] = lambda line: None) -> Optional[Context]:
    """How this machine takes `record` on; None if it cannot: a rehearsal
    that runs on another machine's emulator is that machine's to take on."""
    resume = record.resume or {}
    if record.on_dataflow:
        options = options_lib.pipeline_options(resume.get('pipeline_args') or [])
        target = planning.records_target(options, resume.get('namespace'))
    elif record.machine == identity.machine():
        target = planning.local_records_target(resume.get('namespace'))
    else:
        return None
    signoff_target = planning.signoff_target(resume.get('namespace'))
    return Context(record_lib.RehearsalStore(signoff_target), runs.RunStore(target),
                   find_job, say)


def take_on(record: record_lib.RehearsalRecord, find_job: Callable[[str], type],
            say: Callable[[str], None] = lambda line: None) -> record_lib.RehearsalRecord:
    """A record as it stands now: a running rehearsal on Dataflow is taken
    on as far as its runs allow (readers call this, as they follow runs)."""
    if not record.is_running or not record.on_dataflow:
        return record
    context = context_for(record, find_job, say)
    return advance(context, record.rehearsal_id) if context else record


def advance(context: Context, rehearsal_id: str) -> record_lib.RehearsalRecord:
    """Take the rehearsal on from where its record stands, as far as its runs
    allow: a step is taken once the run before it has ended."""
    record = context.rehearsals.get(rehearsal_id)
    while record.is_running and _step(context, record):
        record = context.rehearsals.get(rehearsal_id)
    return record


class _Taken(Exception):
    """Another reader took this step first."""


def _step(context: Context, record: record_lib.RehearsalRecord) -> bool:
    """Take the next step of a running rehearsal; False while the run it
    waits for has not ended."""
    if 'job' not in record.durations:
        run = launcher.current(context.runs, record.run_id)
        if not run.is_terminal:
            return False
        _job_ended(context, record, run)
        return True
    names = (record.resume or {}).get('verify') or []
    for index, name in enumerate(names):
        if index == len(record.verify):
            _start_verify(context, record, index, name)
            return True
        entry = record.verify[index]
        if entry.get('passed') is None:
            run = launcher.current(context.runs, entry['run_id'])
            if not run.is_terminal:
                return False
            _verify_ended(context, record.rehearsal_id, index, run)
            return True
    _conclude(context, record)
    return True


def _change(context: Context, rehearsal_id: str, guard: Callable, change: Callable) -> bool:
    """Apply `change` to the record in one transaction if `guard(record)`
    still holds (no other reader took the step); whether it did."""
    def apply(record):
        if not guard(record):
            raise _Taken()
        change(record)
    try:
        context.rehearsals.change(rehearsal_id, apply)
    except _Taken:
        return False
    return True


def _writes(record: runs.RunRecord) -> dict:
    writes: dict = {'put': {}, 'delete': {}}
    for name, value in record.counters.items():
        op, _, kind = name.partition('.')
        if op in ('puts', 'deletes') and value:
            writes[op[:-1]][kind] = value
    return writes


def _expected(expected: Optional[list], line: str) -> bool:
    return bool(expected) and any(item.matches(line) for item in expected)


def _expectation(record: record_lib.RehearsalRecord) -> Optional[list]:
    resume = record.resume or {}
    if resume.get('expected_text') is None:
        return None
    return expect_lib.parse_text(resume['expected_text'],
                                 resume.get('expect_file') or 'the request')


def _output(context: Context, run: runs.RunRecord) -> output_format.StoredOutput:
    stored = (context.runs.stored_output(run.run_id)
              if run.status == runs.COMPLETED else None)
    return stored or output_format.StoredOutput([], '', output_format.Counts())


def _job_ended(context: Context, record: record_lib.RehearsalRecord,
               run: runs.RunRecord) -> None:
    """The job's run ended: its after state (the manifest that makes it
    readable), its failed items and error lines."""
    resume = record.resume or {}
    writes, after_state, reasons = {}, None, []
    if run.status == runs.COMPLETED:
        writes = _writes(run)
        after_state = after_state_lib.finish(
            resume['after_dir'], resume['base'], run.run_id,
            record.job_name, writes)
    else:
        reasons.append(f'The job\'s run {run.status}: {run.error}')
    output = _output(context, run)
    failed_items = [output_format.failed_item(line) for line in output.failure_lines]
    if output.counts.failed_items:
        reasons.append(f'{output.counts.failed_items} item(s) failed in the job\'s run.')
    unexpected = [line for line in output.of_kinds(output_format.ERROR)
                  if not _expected(_expectation(record), line)]
    if unexpected:
        reasons.append(f'The job\'s run reported {len(unexpected)} error line(s) the '
                       f'expected output does not name, the first: {unexpected[0][:300]}')

    measured = estimate_lib.measured_by_run(run) or {}
    if run.estimate:    # on Dataflow: what was estimated, beside what it used
        measured.update(estimate=estimate_lib.figures_text(run.estimate),
                        beside_actuals=estimate_lib.beside_actuals(run.estimate, run.usage))

    def record_it(r):
        r.durations['job'] = run.seconds
        r.measured = measured     # what estimates of larger runs scale from
        r.writes, r.after_state = writes, after_state
        r.failed_items = failed_items
        r.reasons.extend(reasons)
    if _change(context, record.rehearsal_id, lambda r: 'job' not in r.durations, record_it):
        context.say(f'After state: {after_state}' if after_state else
                    'After state: - (the job\'s run did not complete)')


def _start_verify(context: Context, record: record_lib.RehearsalRecord,
                  index: int, name: str) -> None:
    """Start verify job `index` over the after state, once; or record why it
    cannot run."""
    def unclaimed(r):
        return len(r.verify) == index

    why_not = (f'the rehearsal was canceled by {record.canceled.get("by")}'
               if record.canceled else
               None if record.after_state else 'there is no after state')
    plan = None
    if why_not is None:
        try:
            plan = planning.plan_run(
                context.find_job(name), {}, None,
                (record.resume or {}).get('pipeline_args') or [],
                export=record.after_state, namespace=(record.resume or {}).get('namespace'),
                command=REHEARSE_COMMAND)
        except refusals.Refused as error:
            why_not = f'it could not be planned here ({error})'
    if why_not is not None:
        _change(context, record.rehearsal_id, unclaimed, lambda r: r.verify.append(
            {'job': name, 'run_id': None, 'status': None, 'passed': False,
             'error_lines': 0, 'reason': f'Verify job {name} did not run: {why_not}.'}))
        return
    run = context.runs.create(name)
    context.runs.update(run.run_id, rehearsal_id=record.rehearsal_id)
    if not _change(context, record.rehearsal_id, unclaimed, lambda r: r.verify.append(
            {'job': name, 'run_id': run.run_id, 'status': None, 'passed': None,
             'error_lines': 0, 'reason': None})):
        ending.end_unless_ended(context.runs, run.run_id, runs.CANCELED,
                                error='Not needed: another reader of the rehearsal '
                                      'started this verify job first.')
        return
    _start(context, plan, run.run_id)


def _verify_ended(context: Context, rehearsal_id: str, index: int,
                  run: runs.RunRecord) -> None:
    name = run.job_name
    errors = _output(context, run).error_lines
    passed = run.status == runs.COMPLETED and not errors
    reason = (None if passed else
              f'Verify job {name} {run.status}: {run.error}' if run.status != runs.COMPLETED
              else f'Verify job {name} reported {len(errors)} ERROR line(s), '
                   f'the first: {errors[0][:300]}')

    def record_it(r):
        r.verify[index].update(status=run.status, passed=passed,
                               error_lines=len(errors), reason=reason)
        r.durations.setdefault('verify', {})[name] = run.seconds
        if reason:
            r.reasons.append(reason)
    _change(context, rehearsal_id, lambda r: r.verify[index].get('passed') is None,
            record_it)


def _conclude(context: Context, record: record_lib.RehearsalRecord) -> None:
    """Every run ended: the expected output, then the verdict."""
    expected = _expectation(record)
    checked = None
    if expected is not None:
        run = context.runs.get(record.run_id)
        checked = dict(expect_lib.check(expected, _output(context, run).lines),
                       file=(record.resume or {}).get('expect_file'))

    def record_it(r):
        if checked is not None:
            r.expect = checked
            if not checked['passed']:
                r.reasons.append(
                    f'The output does not match {checked["file"]}: '
                    f'{len(checked["missing"])} expected line(s) missing, '
                    f'{len(checked["unexpected"])} unexpected line(s).')
        if r.canceled:
            r.reasons.append(f'Canceled by {r.canceled.get("by") or "someone"}.')
        r.verdict = record_lib.FAILED if r.reasons else record_lib.PASSED
        r.durations['total'] = round((now_msec() - r.created_msec) / 1000, 1)
    if _change(context, record.rehearsal_id, lambda r: r.is_running, record_it):
        signoff.rehearsed(context.rehearsals.target,
                          context.rehearsals.get(record.rehearsal_id))


# Stopping.

def fail(context: Context, rehearsal_id: str, reason: str) -> None:
    """End a running rehearsal `failed` with `reason` (its runs have ended
    or are being ended by whoever stopped them)."""
    def record_it(r):
        r.reasons.append(reason)
        r.verdict = record_lib.FAILED
        r.durations['total'] = round((now_msec() - r.created_msec) / 1000, 1)
    if _change(context, rehearsal_id, lambda r: r.is_running, record_it):
        signoff.rehearsed(context.rehearsals.target, context.rehearsals.get(rehearsal_id))


def cancel(context: Context, rehearsal_id: str,
           user: Optional[str] = None) -> record_lib.RehearsalRecord:
    """Stop a running rehearsal: the run in flight is canceled (on Dataflow,
    its job), no further run starts, and it ends `failed`, saying who."""
    def mark(record):
        if not record.is_running:
            raise record_lib.ApprovalError(
                f'Rehearsal {rehearsal_id} already ended ({record.verdict}); '
                'nothing to cancel.')
        record.canceled = {'by': user or identity.machine_user(), 'at_msec': now_msec()}
    record = context.rehearsals.change(rehearsal_id, mark)
    run_id = record.in_flight_run
    if run_id:
        try:
            launcher.cancel_run(context.runs, run_id, record.canceled['by'])
        except runs.InvalidTransitionError:
            pass   # it ended meanwhile: the rehearsal goes on to its end
    return advance(context, rehearsal_id)
