"""Rehearse a job: the production guide's checks as one command.

1. The job runs over an export for real: its writes go to an after state
   (export/after_state.py), never to a Datastore.
2. Each verify job (an audit or validation job) runs over the after state;
   it passes when its output has no failed item and no error line.
3. With an expected-output file, the job's output is checked against it.
4. Everything is kept in a rehearsal record, with a verdict and its reasons.

A rehearsal runs where its runs run: on this machine, or on Dataflow
(`--runner=DataflowRunner`, an export and an after state on Cloud Storage).

This is what surfaces call: `plan` it (plan.py), `rehearse` (start it and
take it as far as it goes), `take_on` one another machine started
(steps.py), `cancel` it. The rooms behind it: plan.py checks it before
anything runs, record.py keeps its record, state.py types what the record
keeps for whoever takes it on, steps.py is the step machine.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from beam_jobs import identity
from beam_jobs.lifecycle import estimate as estimate_lib
from beam_jobs.lifecycle import launcher
from beam_jobs.records import rehearsals as record_lib
from beam_jobs.records import runs
from beam_jobs.records.store import now_msec
from beam_jobs.rehearsal import record as recording
from beam_jobs.rehearsal import steps
from beam_jobs.rehearsal.plan import RehearsalError, RehearsalPlan, plan
from beam_jobs.rehearsal.steps import Context, context_for, take_on

# What surfaces import from here; the rest lives in the rooms named above.
__all__ = ['RehearsalError', 'RehearsalPlan', 'plan', 'Context', 'context_for',
           'take_on', 'rehearse', 'cancel']


def rehearse(rehearsal: RehearsalPlan, run_store: runs.RunStore,
             say: Callable[[str], None] = print, listeners: Sequence = (),
             wait: Optional[steps.Wait] = None) -> record_lib.RehearsalRecord:
    """Start a planned rehearsal and take it as far as it goes: to its
    verdict here; on Dataflow, while `wait` (a function that follows a run
    until it ends, or returns early when the user stops waiting) waits for
    each run. Returns its record, ended or still running."""
    job_plan = rehearsal.job_plan
    store = recording.store_of(run_store.target.namespace)
    record = recording.create(store, rehearsal, run_store)
    say(f'Rehearsal ID: {record.rehearsal_id}')
    if job_plan.is_dataflow:
        for line in estimate_lib.before_submitting(job_plan.estimate, job_plan.budget):
            say(line)
    known = {p.job_name: p.job for p in rehearsal.verify_plans}
    context = Context(store, run_store, known.__getitem__, say, listeners)
    run_id = recording.job_run(store, run_store, record)
    try:
        steps.start(context, job_plan, run_id)
        return steps.drive(context, record.rehearsal_id, wait)
    except BaseException as error:
        # Ctrl-C, a lost Datastore, a refusal from Dataflow: the rehearsal
        # ends with the reason, never left running for nobody.
        recording.fail(store, record.rehearsal_id,
                       'Stopped by Ctrl-C.' if isinstance(error, KeyboardInterrupt)
                       else f'It stopped: {error}')
        raise


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
    return steps.advance(context, rehearsal_id)
