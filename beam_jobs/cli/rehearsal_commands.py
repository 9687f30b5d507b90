"""`beam-jobs rehearse | rehearsals | rehearsal`: the production guide's
rehearsal, here or on Dataflow (`cancel REHEARSAL_ID` is with `cancel`)."""

from __future__ import annotations

import os
import sys
from typing import Sequence

from beam_jobs.cli import common
from beam_jobs.cli import run_commands
from beam_jobs.cli import watch
from beam_jobs.cli.progress_bar import TerminalBar
from beam_jobs.lifecycle import record_stores
from beam_jobs.records import rehearsals as record_lib
from beam_jobs.records import requests as request_records
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
        '2 bad input. Other flags go to Beam, as for `run`: with '
        '--runner=DataflowRunner every run of the rehearsal runs on Dataflow, over '
        'an export on Cloud Storage, and the command waits for each in turn.')
    rehearse.add_argument('job', nargs='?', default=None,
                          help='the job (with --request: the request\'s)')
    rehearse.add_argument('--export', required=True, metavar='PATH',
                          help='the export (or an earlier after state) to run over')
    rehearse.add_argument('--request', default=None, metavar='ID',
                          help='fulfil a request: its job, verify jobs, params and '
                          'expected output (`beam-jobs requests`)')
    run_commands.add_run_flags(rehearse)
    rehearse.add_argument('--verify', nargs='+', default=[], metavar='JOB',
                          help='audit or validation jobs to run over the after state')
    rehearse.add_argument('--expect', default=None, metavar='FILE',
                          help='the expected output of JOB')
    rehearse.add_argument('--after', default=None, metavar='DIR',
                          help='where to keep the after state (default: under '
                          '.beam-jobs/rehearsals/; on Dataflow, '
                          'gs://BUCKET/rehearsals/ID/after in the temp_location\'s bucket)')
    rehearse.add_argument('--no-wait', '--no_wait', dest='no_wait', action='store_true',
                          help='on Dataflow: submit the job and return; whoever reads '
                          'the rehearsal next (`beam-jobs rehearsal ID`, the console) '
                          'takes it on')
    rehearse.set_defaults(handler=cmd_rehearse, own_flags=common.own_flags(rehearse),
                          takes_pipeline_flags=True)

    listed = commands.add_parser('rehearsals', parents=[parent],
                                 help='rehearsals, newest first')
    listed.add_argument('--limit', type=int, default=20)
    listed.add_argument('--job', help='only rehearsals of this job')
    listed.set_defaults(handler=cmd_rehearsals)
    one = commands.add_parser('rehearsal', parents=[parent],
                              help='one rehearsal\'s whole report (Markdown, to paste)')
    one.add_argument('rehearsal_id')
    one.set_defaults(handler=cmd_rehearsal)


def cmd_rehearse(args, pipeline_args: Sequence[str]) -> int:
    registry = common.registry(args)
    params, request, expect_text = run_commands.run_params(args), None, None
    verify_names, expect_file = args.verify, args.expect
    if args.request:
        if args.verify or args.expect or args.param:
            raise common.UsageError('--request brings its own --verify, --expect and '
                                    '--param: leave those out.')
        request = request_records.RequestStore(
            record_stores.signoff_target(args.namespace)).get(args.request)
        if args.job and args.job != request.job_name:
            raise common.UsageError(f'Request {request.request_id} is for '
                                    f'{request.job_name}, not {args.job}.')
        args.job = request.job_name
        verify_names = request.verify
        params = {**request.params, **params}
        expect_file = (request.expect or {}).get('file')
        expect_text = (request.expect or {}).get('text')
    if not args.job:
        raise common.UsageError('Name the job to rehearse, or a --request.')
    job = registry.get(args.job)
    verify = [registry.get(name) for name in verify_names]
    after = args.after and (args.after if '://' in args.after
                            else os.path.abspath(args.after))
    planned = rehearse_lib.plan(job, args.export, params,
                                args.shard_count, verify, expect_file,
                                pipeline_args, after, args.namespace,
                                own_flags=args.own_flags, request=request,
                                expect_text=expect_text)
    store = record_stores.for_plan(planned.job_plan)
    bar = TerminalBar()
    try:
        record = rehearse_lib.rehearse(
            planned, store, say=lambda line: print(line, flush=True),
            listeners=[bar], wait=None if args.no_wait else watch.follow_to_end)
    finally:
        bar.close()
    return _ended(record)


def _ended(record: record_lib.RehearsalRecord) -> int:
    """The report, and the exit code, of a rehearsal as it stands."""
    if record.is_running:
        print(f'Rehearsal {record.rehearsal_id} goes on on Dataflow: `beam-jobs '
              f'rehearsal {record.rehearsal_id}` takes it on and shows where it '
              f'stands, `beam-jobs cancel {record.rehearsal_id}` stops it.')
        return common.EXIT_OK
    print()
    print(report.markdown(record), end='')
    if record.verdict != record_lib.PASSED:
        print(f'!!! REHEARSAL FAILED: {" ".join(record.reasons)}', file=sys.stderr)
        return common.EXIT_ITEMS_FAILED
    return common.EXIT_OK


def _taken_on(args, record: record_lib.RehearsalRecord) -> record_lib.RehearsalRecord:
    """A running rehearsal on Dataflow, taken on as far as its runs allow."""
    if not (record.is_running and record.on_dataflow):
        return record
    return rehearse_lib.take_on(record, common.registry(args).get,
                                say=lambda line: print(line, flush=True))


def cmd_rehearsals(args) -> int:
    store = record_lib.RehearsalStore(record_stores.signoff_target(args.namespace))
    records = [_taken_on(args, r) for r in store.recent(args.limit, args.job)]
    common.print_table(
        ('REHEARSAL ID', 'VERDICT', 'APPROVED BY', 'CREATED', 'BY', 'EXPORT'),
        [(r.rehearsal_id, r.verdict,
          ', '.join(a['user'] for a in r.standing_approvals) or '-',
          common.when(r.created_msec), r.rehearsed_by or '-',
          str(r.export.get('path') or '-'))
         for r in records],
        '(no rehearsals yet: `beam-jobs rehearse JOB --export PATH`)')
    return common.EXIT_OK


def cmd_rehearsal(args) -> int:
    store = record_lib.RehearsalStore(record_stores.signoff_target(args.namespace))
    print(report.markdown(_taken_on(args, store.get(args.rehearsal_id))), end='')
    return common.EXIT_OK

