"""A rehearsal as a resumable step machine: which step is next, and taking it.

A rehearsal is a sequence of steps kept in its record: the job's run, each
verify job's run in turn, the verdict. `next_step` reads from the record
where it stands; `advance` takes the steps from there, as far as the runs
allow (a step is taken once the run before it has ended). A local rehearsal
goes through them in one go; one on Dataflow is taken on by whoever reads it
next (`take_on`: the command that started it while it waits, `beam-jobs
rehearsal ID`, the console), so it survives the machine that started it going
away. Each step is claimed in the record by a guarded transaction
(record.py), so two readers never start the same run twice.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Callable, Optional, Sequence

from beam_jobs import identity
from beam_jobs import options as options_lib
from beam_jobs import output_format
from beam_jobs import refusals
from beam_jobs.export import after_state as after_state_lib
from beam_jobs.lifecycle import estimate as estimate_lib
from beam_jobs.lifecycle import follow
from beam_jobs.lifecycle import launcher
from beam_jobs.lifecycle import planning
from beam_jobs.lifecycle import record_stores
from beam_jobs.records import rehearsals as record_lib
from beam_jobs.records import runs
from beam_jobs.rehearsal import expect as expect_lib
from beam_jobs.rehearsal import record as recording
from beam_jobs.rehearsal.plan import REHEARSE_COMMAND
from beam_jobs.rehearsal.state import RehearsalState

Wait = Callable[[runs.RunStore, runs.RunRecord], runs.RunRecord]


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


class StepKind(enum.Enum):
    JOB_ENDED = 'the job\'s run ended'
    VERIFY_STARTS = 'a verify job starts'
    VERIFY_ENDED = 'a verify job\'s run ended'
    VERDICT = 'the verdict'


@dataclasses.dataclass(frozen=True)
class Step:
    """The next step of a running rehearsal, and the run (`waits_for`) that
    must end before it is taken, if it waits for one."""

    kind: StepKind
    waits_for: Optional[str] = None
    index: int = 0        # which verify job, for the verify steps
    job: str = ''

    @property
    def waits(self) -> bool:
        """Whether it is taken only once a run has ended."""
        return self.kind in (StepKind.JOB_ENDED, StepKind.VERIFY_ENDED)


def next_step(record: record_lib.RehearsalRecord, state: RehearsalState) -> Step:
    """Where a running rehearsal stands, from its record alone."""
    if 'job' not in record.durations:
        return Step(StepKind.JOB_ENDED, waits_for=record.run_id)
    for index, name in enumerate(state.verify):
        if index == len(record.verify):
            return Step(StepKind.VERIFY_STARTS, index=index, job=name)
        entry = record.verify[index]
        if entry.get('passed') is None:
            return Step(StepKind.VERIFY_ENDED, waits_for=entry['run_id'],
                        index=index, job=name)
    return Step(StepKind.VERDICT)


def start(context: Context, plan: planning.RunPlan, run_id: str) -> runs.RunRecord:
    """A local run runs to its end here; a Dataflow run is submitted."""
    record = launcher.start(plan, context.runs, run_id, listeners=context.listeners)
    if plan.is_dataflow:
        context.say(f'{plan.job_name}: submitted to Dataflow as run {run_id}'
                    + (f' ({record.dataflow.console_url})' if record.dataflow.console_url else ''))
    return record


def drive(context: Context, rehearsal_id: str,
          wait: Optional[Wait] = None) -> record_lib.RehearsalRecord:
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
    state = RehearsalState.from_record(record)
    if record.on_dataflow:
        options = options_lib.pipeline_options(list(state.pipeline_args))
        target = record_stores.runs_target(options, state.namespace)
    elif record.machine == identity.machine():
        target = record_stores.local_target(state.namespace)
    else:
        return None
    return Context(recording.store_of(state.namespace), runs.RunStore(target),
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
    while record.is_running and _take(context, record):
        record = context.rehearsals.get(rehearsal_id)
    return record


def _take(context: Context, record: record_lib.RehearsalRecord) -> bool:
    """Take the next step of a running rehearsal; False while the run it
    waits for has not ended."""
    state = RehearsalState.from_record(record)
    step = next_step(record, state)
    if not step.waits:
        if step.kind is StepKind.VERIFY_STARTS:
            _start_verify(context, record, state, step)
        else:
            _conclude(context, record, state)
        return True
    assert step.waits_for is not None   # a step that waits names its run
    run = follow.current(context.runs, step.waits_for)
    if not run.is_terminal:
        return False
    if step.kind is StepKind.JOB_ENDED:
        _job_ended(context, record, state, run)
    else:
        _verify_ended(context, record.rehearsal_id, step.index, run)
    return True


# The steps.

def _writes(record: runs.RunRecord) -> dict:
    writes: dict = {'put': {}, 'delete': {}}
    for name, value in record.counters.items():
        op, _, kind = name.partition('.')
        if op in ('puts', 'deletes') and value:
            writes[op[:-1]][kind] = value
    return writes


def _expected(expected: Optional[list[Any]], line: str) -> bool:
    return bool(expected) and any(item.matches(line) for item in expected or ())


def _output(context: Context, run: runs.RunRecord) -> output_format.StoredOutput:
    stored = (context.runs.stored_output(run.run_id)
              if run.status == runs.COMPLETED else None)
    return stored or output_format.StoredOutput([], '', output_format.Counts())


def _job_reasons(output: output_format.StoredOutput, state: RehearsalState) -> list[str]:
    """Why the job's output fails the rehearsal: its failed items, and error
    lines the expected output does not name."""
    reasons = []
    expected = state.expectation
    if output.counts.failed_items:
        reasons.append(f'{output.counts.failed_items} item(s) failed in the job\'s run.')
    unexpected = [line for line in output.of_kinds(output_format.ERROR)
                  if not _expected(expected, line)]
    if unexpected:
        reasons.append(f'The job\'s run reported {len(unexpected)} error line(s) the '
                       f'expected output does not name, the first: {unexpected[0][:300]}')
    return reasons


def _job_ended(context: Context, record: record_lib.RehearsalRecord,
               state: RehearsalState, run: runs.RunRecord) -> None:
    """The job's run ended: its after state (the manifest that makes it
    readable), its failed items and error lines."""
    writes, after_state, reasons = {}, None, []
    if run.status == runs.COMPLETED:
        writes = _writes(run)
        after_state = after_state_lib.finish(
            state.after_dir or '', state.base or '', run.run_id, record.job_name, writes)
    else:
        reasons.append(f'The job\'s run {run.status}: {run.error}')
    output = _output(context, run)
    failed_items = [output_format.failed_item(line) for line in output.failure_lines]
    reasons += _job_reasons(output, state)

    measured = estimate_lib.measured_by_run(run) or {}
    estimated = run.dataflow.estimate
    if estimated:    # on Dataflow: what was estimated, beside what it used
        measured.update(estimate=estimate_lib.figures_text(estimated),
                        beside_actuals=estimate_lib.beside_actuals(estimated, run.usage))

    def record_it(r):
        r.durations['job'] = run.seconds
        r.measured = measured     # what estimates of larger runs scale from
        r.writes, r.after_state = writes, after_state
        r.failed_items = failed_items
        r.reasons.extend(reasons)
    if recording.change_if(context.rehearsals, record.rehearsal_id,
                           lambda r: 'job' not in r.durations, record_it):
        context.say(f'After state: {after_state}' if after_state else
                    'After state: - (the job\'s run did not complete)')


def _verify_plan(context: Context, record: record_lib.RehearsalRecord,
                 state: RehearsalState, name: str) -> tuple[Optional[planning.RunPlan], str]:
    """Verify job `name` planned over the after state, or why it cannot run."""
    if record.canceled:
        return None, f'the rehearsal was canceled by {record.canceled.get("by")}'
    if not record.after_state:
        return None, 'there is no after state'
    try:
        return planning.plan_run(
            context.find_job(name), {}, None, list(state.pipeline_args),
            export=record.after_state, namespace=state.namespace,
            command=REHEARSE_COMMAND), ''
    except refusals.Refused as error:
        return None, f'it could not be planned here ({error})'


def _start_verify(context: Context, record: record_lib.RehearsalRecord,
                  state: RehearsalState, step: Step) -> None:
    """Start verify job `step.index` over the after state, once; or record
    why it cannot run."""
    name = step.job
    plan, why_not = _verify_plan(context, record, state, name)
    run = recording.new_run(context.runs, name, record.rehearsal_id) if plan else None
    entry = ({'job': name, 'run_id': run.run_id, 'status': None, 'passed': None,
              'error_lines': 0, 'reason': None} if run else
             {'job': name, 'run_id': None, 'status': None, 'passed': False,
              'error_lines': 0, 'reason': f'Verify job {name} did not run: {why_not}.'})
    claimed = recording.change_if(context.rehearsals, record.rehearsal_id,
                                  lambda r: len(r.verify) == step.index,
                                  lambda r: r.verify.append(entry))
    if run is None or plan is None:
        return
    if not claimed:
        launcher.cancel_unneeded(context.runs, run.run_id,
                                 'Not needed: another reader of the rehearsal '
                                 'started this verify job first.')
        return
    start(context, plan, run.run_id)


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
    recording.change_if(context.rehearsals, rehearsal_id,
                        lambda r: r.verify[index].get('passed') is None, record_it)


def _conclude(context: Context, record: record_lib.RehearsalRecord,
              state: RehearsalState) -> None:
    """Every run ended: the expected output, then the verdict."""
    expected = state.expectation
    checked = None
    if expected is not None and record.run_id:
        run = context.runs.get(record.run_id)
        checked = dict(expect_lib.check(expected, _output(context, run).lines),
                       file=state.expect_file)

    def weigh(r):
        if checked is not None:
            r.expect = checked
            if not checked['passed']:
                r.reasons.append(
                    f'The output does not match {checked["file"]}: '
                    f'{len(checked["missing"])} expected line(s) missing, '
                    f'{len(checked["unexpected"])} unexpected line(s).')
        if r.canceled:
            r.reasons.append(f'Canceled by {r.canceled.get("by") or "someone"}.')
    recording.end(context.rehearsals, record.rehearsal_id, weigh)
