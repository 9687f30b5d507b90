"""Rehearse a job: the production guide's checks as one command.

1. The job runs over an export for real: its writes go to an after state
   (export/after_state.py), never to a Datastore.
2. Each verify job (an audit or validation job) runs over the after state;
   it passes when its output has no ERROR line.
3. With an expected-output file, the job's output is checked against it.
4. Everything is kept in a rehearsal record, with a verdict and its reasons.

Everything that can be refused is refused before anything runs or is
recorded, as for a run (`launcher.plan_run`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from beam_jobs import emulator
from beam_jobs import job_class as job_class_lib
from beam_jobs import launcher
from beam_jobs import runs
from beam_jobs.export import after_state as after_state_lib
from beam_jobs.rehearsal import code_version
from beam_jobs.rehearsal import expect as expect_lib
from beam_jobs.rehearsal import record as record_lib

# `ERROR in map for ExplorationModel/exp-1: ValueError: … (at f.py:3)`,
# maybe counted as `(3x) ERROR …`: the framework's line for a failed item.
_FAILED_ITEM = re.compile(r'^(?:\(\d+x\) )?ERROR in (\w+) for (.+?): (.*)$')
_COUNTED = re.compile(r'^\(\d+x\) ')


class RehearsalError(ValueError):
    """A rehearsal that cannot run as asked: bad input, said in one sentence."""


def is_error_line(line: str) -> bool:
    """An output line that reports an error: it starts with ERROR, after an
    optional `(Nx) ` count and an opening `['` (a `('ERROR …', …)` pair)."""
    text = _COUNTED.sub('', line, count=1)
    return text.lstrip('[(\'"').startswith('ERROR')


def failed_items(lines: Sequence[str]) -> list[dict]:
    """The failed items a run's output names: step, kind, key, reason."""
    items = []
    for line in lines:
        found = _FAILED_ITEM.match(line)
        if not found:
            continue
        step, where, reason = found.groups()
        kind, _, key = where.partition('/') if '/' in where else ('', '', where)
        items.append({'step': step, 'kind': kind, 'key': key, 'reason': reason,
                      'line': line})
    return items


@dataclasses.dataclass
class RehearsalPlan:
    """A rehearsal that passed every check before it runs."""

    job: type
    export: str
    job_plan: launcher.RunPlan
    verify_plans: list
    expected: Optional[list]
    expect_file: Optional[str]
    after_dir: str


def plan(job: type, export: str, params: Optional[Mapping[str, Any]] = None,
         shard_count: Optional[int] = None, verify: Sequence[type] = (),
         expect_file: Optional[str] = None, pipeline_args: Sequence[str] = (),
         after_dir: Optional[str] = None,
         namespace: Optional[str] = None) -> RehearsalPlan:
    if not export:
        raise RehearsalError('A rehearsal runs over a copy of production data: '
                             'pass --export PATH (see `beam-jobs export`).')
    job_plan = launcher.plan_run(job, params, shard_count, pipeline_args,
                                 export=export, namespace=namespace)
    if job_plan.is_dataflow:
        raise RehearsalError('A rehearsal runs locally, over the export, with its '
                             'writes kept in an after state: drop --runner='
                             'DataflowRunner (run it on Dataflow once approved).')
    verify_plans = [launcher.plan_run(check, {}, None, pipeline_args, export=export,
                                      namespace=namespace) for check in verify]
    expected = expect_lib.parse(expect_file) if expect_file else None
    if after_dir and os.path.exists(after_dir) and os.listdir(after_dir):
        raise RehearsalError(f'The after state folder {after_dir} is not empty: '
                             'pass a new folder, or leave --after out.')
    return RehearsalPlan(job, export, job_plan, verify_plans, expected,
                         expect_file, after_dir or '')


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
    job_name = job_class_lib.job_name(rehearsal.job)
    store = record_lib.RehearsalStore(run_store.target)
    record = store.create(
        job_name, code_version=code_version.of(rehearsal.job),
        export=rehearsal.job_plan.source.describe(run_store.target),
        params=rehearsal.job_plan.params,
        shard_count=rehearsal.job_plan.shard_count,
        coordinator_notes=getattr(rehearsal.job, 'COORDINATOR_NOTES', None))
    say(f'Rehearsal ID: {record.rehearsal_id}')
    after_dir = rehearsal.after_dir or str(
        emulator.home_dir() / 'rehearsals' / record.rehearsal_id / 'after')
    job_plan = dataclasses.replace(rehearsal.job_plan, after_state=after_dir)
    run = _run(job_plan, run_store, listeners)
    record.run_id = run.run_id
    record.durations['job'] = run.seconds
    output = run_store.output(run.run_id) if run.status == runs.COMPLETED else []
    reasons = []
    if run.status == runs.COMPLETED:
        record.writes = _writes(run)
        record.after_state = after_state_lib.finish(
            after_dir, rehearsal.job_plan.source.path, run.run_id, job_name,
            record.writes)
        say(f'After state: {record.after_state}')
    else:
        say('After state: - (the job\'s run did not complete)')
        reasons.append(f'The job\'s run {run.status}: {run.error}')
    record.failed_items = failed_items(output)
    if run.error_count:
        reasons.append(f'{run.error_count} item(s) failed in the job\'s run.')
    record.durations['verify'] = {}
    for verify_plan in rehearsal.verify_plans:
        record.verify.append(_verify(verify_plan, record.after_state, run_store,
                                     record.durations['verify']))
        if not record.verify[-1]['passed']:
            reasons.append(record.verify[-1]['reason'])
    if rehearsal.expected is not None:
        record.expect = dict(expect_lib.check(rehearsal.expected, output),
                             file=rehearsal.expect_file)
        if not record.expect['passed']:
            reasons.append(
                f'The output does not match {rehearsal.expect_file}: '
                f'{len(record.expect["missing"])} expected line(s) missing, '
                f'{len(record.expect["unexpected"])} unexpected line(s).')
    record.reasons = reasons
    record.verdict = record_lib.FAILED if reasons else record_lib.PASSED
    record.durations['total'] = round(time.monotonic() - began, 1)
    return store.save(record)


def _run(plan: launcher.RunPlan, run_store: runs.RunStore,
         listeners: Sequence = ()) -> runs.RunRecord:
    run_id = run_store.create(job_class_lib.job_name(plan.job)).run_id
    return launcher.execute(plan, run_store, run_id, progress_listeners=listeners)


def _verify(plan: launcher.RunPlan, after_state: Optional[str],
            run_store: runs.RunStore, durations: dict) -> dict:
    name = job_class_lib.job_name(plan.job)
    if after_state is None:
        return {'job': name, 'run_id': None, 'status': None, 'passed': False,
                'error_lines': 0,
                'reason': f'Verify job {name} did not run: there is no after state.'}
    plan = dataclasses.replace(plan, source=type(plan.source)(after_state),
                               export=after_state)
    run = _run(plan, run_store)
    durations[name] = run.seconds
    errors = ([line for line in run_store.output(run.run_id) if is_error_line(line)]
              if run.status == runs.COMPLETED else [])
    passed = run.status == runs.COMPLETED and not errors
    reason = (None if passed else
              f'Verify job {name} {run.status}: {run.error}' if run.status != runs.COMPLETED
              else f'Verify job {name} reported {len(errors)} ERROR line(s), '
                   f'the first: {errors[0][:300]}')
    return {'job': name, 'run_id': run.run_id, 'status': run.status,
            'passed': passed, 'error_lines': len(errors), 'reason': reason}
