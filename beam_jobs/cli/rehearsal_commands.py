"""`beam-jobs rehearse | rehearsals | rehearsal | approve`: the production
guide's rehearsal and sign-off."""

from __future__ import annotations

import os
import sys
from typing import Sequence

from beam_jobs.cli import common
from beam_jobs.cli import run_commands
from beam_jobs.cli.progress_bar import TerminalBar
from beam_jobs.lifecycle import planning
from beam_jobs.records import rehearsals as record_lib
from beam_jobs.rehearsal import rehearse as rehearse_lib
from beam_jobs.rehearsal import report


def add_parsers(commands, parent) -> None:
    rehearse = commands.add_parser(
        'rehearse', parents=[parent],
        help='run a job over an export, check it, and keep a rehearsal record',
        description='Run JOB over the export for real, its writes kept in an '
        'after state (never a Datastore); run each --verify job over the after '
        'state (it passes when its output has no ERROR line); check the output '
        'against --expect FILE (one line per output line: exact text, or re: '
        'and a regular expression). Prints `Rehearsal ID: ID` first and '
        '`After state: PATH`, then the report. Exit code: 0 passed, 3 failed, '
        '2 bad input. Other flags go to Beam, as for `run`.')
    rehearse.add_argument('job')
    rehearse.add_argument('--export', required=True, metavar='PATH',
                          help='the export (or an earlier after state) to run over')
    run_commands.add_run_flags(rehearse)
    rehearse.add_argument('--verify', nargs='+', default=[], metavar='JOB',
                          help='audit or validation jobs to run over the after state')
    rehearse.add_argument('--expect', default=None, metavar='FILE',
                          help='the expected output of JOB')
    rehearse.add_argument('--after', default=None, metavar='DIR',
                          help='where to keep the after state (default: under '
                          '.beam-jobs/rehearsals/)')
    rehearse.set_defaults(handler=cmd_rehearse, own_flags=common.own_flags(rehearse),
                          takes_pipeline_flags=True)

    listed = commands.add_parser('rehearsals', parents=[parent],
                                 help='rehearsals, newest first')
    listed.add_argument('--limit', type=int, default=20)
    listed.add_argument('--job', help='only rehearsals of this job')
    listed.set_defaults(handler=cmd_rehearsals)
    one = commands.add_parser('rehearsal', parents=[parent],
                              help='one rehearsal\'s whole report (Markdown)')
    one.add_argument('rehearsal_id')
    one.set_defaults(handler=cmd_rehearsal)
    approve = commands.add_parser('approve', parents=[parent],
                                  help='approve a passed rehearsal')
    approve.add_argument('rehearsal_id')
    approve.add_argument('--user', required=True, help='who approves (recorded)')
    approve.add_argument('--note', default=None, help='why (recorded)')
    approve.set_defaults(handler=cmd_approve)


def cmd_rehearse(args, pipeline_args: Sequence[str]) -> int:
    registry = common.registry(args)
    job = registry.get(args.job)
    verify = [registry.get(name) for name in args.verify]
    after = args.after and (args.after if '://' in args.after
                            else os.path.abspath(args.after))
    planned = rehearse_lib.plan(job, args.export, run_commands.run_params(args),
                                args.shard_count, verify, args.expect,
                                pipeline_args, after, args.namespace,
                                own_flags=args.own_flags)
    store = planning.record_store(planned.job_plan)
    bar = TerminalBar()
    try:
        record = rehearse_lib.rehearse(
            planned, store, say=lambda line: print(line, flush=True),
            listeners=[bar])
    finally:
        bar.close()
    print()
    print(report.markdown(record), end='')
    if record.verdict != record_lib.PASSED:
        print(f'!!! REHEARSAL FAILED: {" ".join(record.reasons)}', file=sys.stderr)
        return common.EXIT_ITEMS_FAILED
    return common.EXIT_OK


def cmd_rehearsals(args) -> int:
    store = record_lib.RehearsalStore(common.store(args).target)
    records = store.recent(args.limit, args.job)
    common.print_table(
        ('REHEARSAL ID', 'VERDICT', 'APPROVED BY', 'CREATED', 'EXPORT'),
        [(r.rehearsal_id, r.verdict, ', '.join(a['user'] for a in r.approvals) or '-',
          common.when(r.created_msec), str(r.export.get('path') or '-'))
         for r in records],
        '(no rehearsals yet: `beam-jobs rehearse JOB --export PATH`)')
    return common.EXIT_OK


def cmd_rehearsal(args) -> int:
    store = record_lib.RehearsalStore(common.store(args).target)
    print(report.markdown(store.get(args.rehearsal_id)), end='')
    return common.EXIT_OK


def cmd_approve(args) -> int:
    store = record_lib.RehearsalStore(common.store(args).target)
    record = store.approve(args.rehearsal_id, args.user, args.note)
    print(f'Rehearsal {record.rehearsal_id} of {record.job_name} approved by '
          f'{args.user}: {record.job_name} at this code version may now run in '
          'production.')
    return common.EXIT_OK
