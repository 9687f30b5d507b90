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
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from beam_jobs import emulator
from beam_jobs import identity
from beam_jobs import output_format
from beam_jobs.export import after_state as after_state_lib
from beam_jobs.io import sources
from beam_jobs.lifecycle import code_version
from beam_jobs.lifecycle import launcher
from beam_jobs.lifecycle import planning
from beam_jobs.records import rehearsals as record_lib
from beam_jobs.records import requests as request_records
from beam_jobs.records import runs
from beam_jobs.rehearsal import expect as expect_lib
from beam_jobs.rehearsal import signoff


class RehearsalError(ValueError):
    """A rehearsal that cannot run as asked: bad input, said in one sentence."""


@dataclasses.dataclass
class RehearsalPlan:
    """A rehearsal that passed every check before it runs."""

    rehearsal_id: str
    job: type
    export: str
    job_plan: planning.RunPlan
    verify_plans: list
    expected: Optional[list]
    expect_file: Optional[str]
    request_id: Optional[str] = None

    @property
    def after_dir(self) -> str:
        return self.job_plan.write_mode.after_state


def default_after_dir(rehearsal_id: str) -> str:
    return str(emulator.home_dir() / 'rehearsals' / rehearsal_id / 'after')


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
    if not export:
        raise RehearsalError('A rehearsal runs over a copy of production data: '
                             'pass --export PATH (see `beam-jobs export`).')
    if after_dir and os.path.exists(after_dir) and os.listdir(after_dir):
        raise RehearsalError(f'The after state folder {after_dir} is not empty: '
                             'pass a new folder, or leave --after out.')
    rehearsal_id = record_lib.RehearsalStore.new_id(job.__name__)
    job_plan = planning.plan_run(
        job, params, shard_count, pipeline_args, export=export, namespace=namespace,
        after_state=after_dir or default_after_dir(rehearsal_id),
        own_flags=own_flags, command='beam-jobs rehearse')
    if job_plan.is_dataflow:
        raise RehearsalError('A rehearsal runs locally, over the export, with its '
                             'writes kept in an after state: drop --runner='
                             'DataflowRunner (run it on Dataflow once approved).')
    # Checked against the export now; each runs over the after state later.
    verify_plans = [planning.plan_run(check, {}, None, pipeline_args, export=export,
                                      namespace=namespace, command='beam-jobs rehearse')
                    for check in verify]
    if expect_text is not None:
        expected = expect_lib.parse_text(expect_text, expect_file or 'the request')
    else:
        expected = expect_lib.parse(expect_file) if expect_file else None
    return RehearsalPlan(rehearsal_id, job, export, job_plan, verify_plans, expected,
                         expect_file, request.request_id if request else None)


def _writes(record: runs.RunRecord) -> dict:
    writes: dict = {'put': {}, 'delete': {}}
    for name, value in record.counters.items():
        op, _, kind = name.partition('.')
        if op in ('puts', 'deletes') and value:
            writes[op[:-1]][kind] = value
    return writes


def rehearse(rehearsal: RehearsalPlan, run_store: runs.RunStore,
             say: Callable[[str], None] = print,
             listeners: Sequence = ()) -> record_lib.RehearsalRecord:
    """Run a planned rehearsal to its verdict; keep and return its record."""
    began = time.monotonic()
    job_plan = rehearsal.job_plan
    # Published where the team's sign-off lives; its runs stay local.
    signoff_target = planning.signoff_target(run_store.target.namespace)
    store = record_lib.RehearsalStore(signoff_target)
    record = store.create(
        job_plan.job_name, rehearsal_id=rehearsal.rehearsal_id,
        code_version=code_version.of(rehearsal.job, job_plan.params),
        export=job_plan.source.describe(run_store.target),
        params=job_plan.params, shard_count=job_plan.shard_count,
        coordinator_notes=getattr(rehearsal.job, 'COORDINATOR_NOTES', None),
        request_id=rehearsal.request_id, rehearsed_by=identity.machine_user(),
        machine=identity.machine())
    say(f'Rehearsal ID: {record.rehearsal_id}')
    run = _run(job_plan, run_store, listeners)
    record.run_id = run.run_id
    record.durations['job'] = run.seconds
    output = (run_store.stored_output(run.run_id) if run.status == runs.COMPLETED
              else None) or output_format.StoredOutput([], '', output_format.Counts())
    reasons = []
    if run.status == runs.COMPLETED:
        record.writes = _writes(run)
        record.after_state = after_state_lib.finish(
            rehearsal.after_dir, job_plan.source.path, run.run_id,
            job_plan.job_name, record.writes)
        say(f'After state: {record.after_state}')
    else:
        say('After state: - (the job\'s run did not complete)')
        reasons.append(f'The job\'s run {run.status}: {run.error}')
    record.failed_items = [output_format.failed_item(line)
                           for line in output.failure_lines]
    if output.counts.failed_items:
        reasons.append(f'{output.counts.failed_items} item(s) failed in the job\'s run.')
    unexpected_errors = [line for line in output.of_kinds(output_format.ERROR)
                         if not _expected(rehearsal.expected, line)]
    if unexpected_errors:
        reasons.append(f'The job\'s run reported {len(unexpected_errors)} error '
                       f'line(s) the expected output does not name, the first: '
                       f'{unexpected_errors[0][:300]}')
    record.durations['verify'] = {}
    for verify_plan in rehearsal.verify_plans:
        record.verify.append(_verify(verify_plan, record.after_state, run_store,
                                     record.durations['verify']))
        if not record.verify[-1]['passed']:
            reasons.append(record.verify[-1]['reason'])
    if rehearsal.expected is not None:
        record.expect = dict(expect_lib.check(rehearsal.expected, output.lines),
                             file=rehearsal.expect_file)
        if not record.expect['passed']:
            reasons.append(
                f'The output does not match {rehearsal.expect_file}: '
                f'{len(record.expect["missing"])} expected line(s) missing, '
                f'{len(record.expect["unexpected"])} unexpected line(s).')
    record.reasons = reasons
    record.verdict = record_lib.FAILED if reasons else record_lib.PASSED
    record.durations['total'] = round(time.monotonic() - began, 1)
    store.save(record)
    signoff.rehearsed(signoff_target, record)
    return record


def _expected(expected: Optional[list], line: str) -> bool:
    return bool(expected) and any(item.matches(line) for item in expected)


def _run(plan: planning.RunPlan, run_store: runs.RunStore,
         listeners: Sequence = ()) -> runs.RunRecord:
    run_id = run_store.create(plan.job_name).run_id
    return launcher.start(plan, run_store, run_id, listeners=listeners)


def _verify(plan: planning.RunPlan, after_state: Optional[str],
            run_store: runs.RunStore, durations: dict) -> dict:
    name = plan.job_name
    if after_state is None:
        return {'job': name, 'run_id': None, 'status': None, 'passed': False,
                'error_lines': 0,
                'reason': f'Verify job {name} did not run: there is no after state.'}
    run = _run(plan.over(sources.for_run(after_state)), run_store)
    durations[name] = run.seconds
    stored = (run_store.stored_output(run.run_id)
              if run.status == runs.COMPLETED else None)
    errors = stored.error_lines if stored else []
    passed = run.status == runs.COMPLETED and not errors
    reason = (None if passed else
              f'Verify job {name} {run.status}: {run.error}' if run.status != runs.COMPLETED
              else f'Verify job {name} reported {len(errors)} ERROR line(s), '
                   f'the first: {errors[0][:300]}')
    return {'job': name, 'run_id': run.run_id, 'status': run.status,
            'passed': passed, 'error_lines': len(errors), 'reason': reason}
