"""`beam-jobs list | run | runs | status | output | cancel`: jobs and their runs."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from beam_jobs import job_class as job_class_lib
from beam_jobs import refusals
from beam_jobs import registry as registry_lib
from beam_jobs.cli import common
from beam_jobs.cli import watch
from beam_jobs.cli.progress_bar import TerminalBar
from beam_jobs.io import namespaces as namespaces_lib
from beam_jobs.io import sources
from beam_jobs.lifecycle import estimate
from beam_jobs.lifecycle import follow
from beam_jobs.lifecycle import gate
from beam_jobs.lifecycle import launcher
from beam_jobs.lifecycle import planning
from beam_jobs.lifecycle import record_stores
from beam_jobs.lifecycle import run_logs
from beam_jobs.lifecycle import run_text
from beam_jobs.records import rehearsals as rehearsal_records
from beam_jobs.records import runs
from beam_jobs.rehearsal import rehearse as rehearse_lib


def add_parsers(commands, parent) -> None:
    commands.add_parser('list', parents=[parent], help='list the registered jobs'
                        ).set_defaults(handler=cmd_list)
    _add_run_parser(commands, parent)
    recent = commands.add_parser('runs', parents=[parent],
                                 help='recent runs, newest first')
    recent.add_argument('--limit', type=int, default=20)
    recent.add_argument('--job', help='only runs of this job')
    recent.set_defaults(handler=cmd_runs)
    status = commands.add_parser('status', parents=[parent], help='one run\'s record')
    status.add_argument('run_id')
    status.add_argument('--watch', action='store_true',
                        help='follow the run to its end, showing its progress '
                        '(exit code as `run`: 0, 3 items failed or error lines, 1 failed)')
    status.add_argument('--every', type=float, default=None, metavar='SECS',
                        help='with --watch: seconds between looks (default: the '
                        '`follow_interval` setting, 10)')
    status.set_defaults(handler=cmd_status)
    output = commands.add_parser('output', parents=[parent], help='one run\'s output lines')
    output.add_argument('run_id')
    output.set_defaults(handler=cmd_output)
    cancel = commands.add_parser('cancel', parents=[parent],
                                 help='stop a run, or a rehearsal (with its run in flight)')
    cancel.add_argument('run_id', metavar='RUN_ID|REHEARSAL_ID')
    cancel.add_argument('--user', default=None, help='who cancels (recorded)')
    cancel.set_defaults(handler=cmd_cancel)


def _add_run_parser(commands, parent) -> None:
    run = commands.add_parser(
        'run', parents=[parent],
        help='run a job (any further flags go to Beam)',
        description='Run JOB to the end and print its output. The flags below '
        'are beam-jobs\' own; every other flag (e.g. --runner, '
        '--direct_num_workers) must be an option of Beam\'s PipelineOptions '
        'and is passed to Beam untouched. A flag that neither knows is '
        'refused before anything runs.')
    run.add_argument('job')
    add_run_flags(run)
    run.add_argument('--export', default=None, metavar='PATH',
                     help='read a Datastore managed export (its '
                     '.overall_export_metadata, or the folder holding it; '
                     'local or gs://) instead of the Datastore; the run then '
                     'writes to no Datastore')
    run.add_argument('--namespaces', default=None, metavar='A,B,C|all',
                     help='read each of these namespaces (`(default)` names the '
                     'default one), or every one (`all`), in this one run; writes '
                     'go back to each entity\'s own namespace, and the summary '
                     'counts each (not with --namespace)')
    run.add_argument('--preview', type=int, default=None, metavar='CHARS',
                     help='print at most CHARS of each output line (the '
                     'stored output stays whole: see `beam-jobs output`)')
    run.add_argument('--wait', action='store_true',
                     help='for a Dataflow run: follow it to its end and report '
                     'it as a local run is reported, with the same exit codes')
    run.add_argument('--verbose', action='store_true',
                     help='show Beam\'s log and a failure\'s traceback here, '
                     'not only in the run\'s log file')
    run.add_argument('--skip-rehearsal', '--skip_rehearsal', dest='skip_rehearsal',
                     action='store_true',
                     help='run in production without an approved rehearsal '
                     '(needs --user and --reason; the run record keeps both)')
    run.add_argument('--user', default=None, help='with --skip-rehearsal: who skips it')
    run.add_argument('--reason', default=None, help='with --skip-rehearsal: why')
    run.add_argument('--retry-failed', '--retry_failed', dest='retry_failed',
                     default=None, metavar='RUN_ID',
                     help='finish run RUN_ID: map only the entities whose map '
                     'failed in it (a run that completed) or that it had not '
                     'written yet (a run that failed or was canceled midway)')
    add_backup_flags(run)
    add_guardrail_flags(run)
    # The console creates the record (so it can answer with its id at once)
    # and starts this command in a process of its own to run it.
    run.add_argument('--run-id', dest='run_id', default=None, help=argparse.SUPPRESS)
    run.set_defaults(handler=cmd_run, own_flags=common.own_flags(run),
                     takes_pipeline_flags=True)


def add_run_flags(command) -> None:
    """The flags of every command that runs a job, in both spellings: a Beam
    user types `--dry_run` by habit, and it must mean ours, not Beam's."""
    command.add_argument('--shard-count', '--shard_count', dest='shard_count',
                         type=int, default=None,
                         help='key-range splits per Datastore read (default 8)')
    command.add_argument('--param', action='append', default=[],
                         metavar='KEY=VALUE', help='a job parameter, read with '
                         'get_mapper_param (VALUE is JSON if it parses, else text)')
    command.add_argument('--dry-run', '--dry_run', dest='dry_run',
                         action='store_true',
                         help='report the writes and deletes; write nothing')
    command.add_argument('--fail-fast', '--fail_fast', dest='fail_fast',
                         action='store_true',
                         help='stop at the first failed entity instead of '
                         'reporting each failure and going on')


def add_backup_flags(command) -> None:
    """Where a writing run keeps its before-images, or that it keeps none."""
    command.add_argument('--backup-location', '--backup_location', dest='backup_location',
                         default=None, metavar='PATH',
                         help='where the run keeps the before-images of what it '
                         'writes (local or gs://; default: the backup_location '
                         'setting, else .beam-jobs/backups here and '
                         'gs://BUCKET/beam-jobs/backups on Dataflow)')
    command.add_argument('--no-backup', '--no_backup', dest='no_backup',
                         action='store_true',
                         help='keep no before-images (the run cannot be reverted; '
                         'recorded, and audited in production)')


def add_guardrail_flags(command) -> None:
    """What keeps a Dataflow run's cost bounded, beside the worker cap
    (Beam's --max_num_workers, default the max_num_workers setting, 20)."""
    command.add_argument('--max-cost-usd', '--max_cost_usd', dest='max_cost_usd',
                         default=None, metavar='USD',
                         help='on Dataflow: cancel the run (ended failed) once the '
                         'resources it reports cost more than this at list rates '
                         '(default: the max_cost_usd setting; none)')
    command.add_argument('--flexrs', action='store_true',
                         help='on Dataflow: FlexRS (Beam\'s --flexrs_goal='
                         'COST_OPTIMIZED), cheaper for work that can wait: the '
                         'job may start up to hours later')


def run_params(args) -> dict:
    params = common.parse_params(args.param)
    if args.dry_run:
        params['dry_run'] = True
    if args.fail_fast:
        params['fail_fast'] = True
    return params


def cmd_list(args) -> int:
    for job in common.registry(args):
        print(f'{job.__name__}\t{", ".join(job_class_lib.kinds(job))}')
    return common.EXIT_OK


def _preview(line: str, limit: Optional[int], run_id: str) -> str:
    if limit is None or len(line) <= limit:
        return line
    return (f'{line[:limit]}… (+{len(line) - limit} characters; whole line: '
            f'beam-jobs output {run_id})')


def cmd_run(args, pipeline_args: Sequence[str]) -> int:
    job = common.registry(args).get(args.job)
    if (args.user or args.reason) and not args.skip_rehearsal:
        raise common.UsageError('--user and --reason go with --skip-rehearsal.')
    skip = gate.Skip(args.user, args.reason) if args.skip_rehearsal else None
    # Everything is checked before anything starts: no emulator, no record.
    try:
        retry_of = (follow.current(common.store(args, pipeline_args), args.retry_failed)
                    if args.retry_failed else None)
        plan = planning.plan_run(job, run_params(args), args.shard_count,
                                 pipeline_args, export=args.export,
                                 namespace=args.namespace, skip_rehearsal=skip,
                                 own_flags=args.own_flags,
                                 backup_location=args.backup_location,
                                 no_backup=args.no_backup, retry_of=retry_of,
                                 max_cost_usd=args.max_cost_usd, flexrs=args.flexrs,
                                 namespaces=namespaces_lib.parse(args.namespaces))
    except planning.NothingLeftError as nothing:
        if args.run_id:
            _refuse_record(args, str(nothing))
        print(nothing)
        return common.EXIT_OK
    except refusals.Refused as error:
        if args.run_id:   # the console made the record: it must not stay new
            _refuse_record(args, str(error))
        raise
    store = record_stores.for_plan(plan)
    if args.run_id:
        existing = store.get(args.run_id)
        if existing.status != runs.NEW or existing.job_name != job.__name__:
            raise common.UsageError(f'Run {args.run_id} is not a new run of {job.__name__}.')
    run_id = args.run_id or store.create(job.__name__).run_id
    print(f'Run {run_id}', flush=True)
    if plan.is_dataflow:
        print('\n'.join(estimate.before_submitting(plan.estimate, plan.budget)), flush=True)
    bar = TerminalBar()
    try:
        record = launcher.start(plan, store, run_id, listeners=[bar],
                                verbose=args.verbose)
    except launcher.RunCanceledError as error:
        print(f'!!! RUN CANCELED: {error}', file=sys.stderr)
        return common.EXIT_FAILED
    finally:
        bar.close()
    if record.dataflow.job_id and not record.is_terminal:
        print(f'Submitted to Dataflow as job {record.dataflow.job_id}\n'
              f'  console: {record.dataflow.console_url}\n'
              f'  follow:  beam-jobs status {run_id} --watch   (output: beam-jobs '
              f'output {run_id}; stop: beam-jobs cancel {run_id})', flush=True)
        if not args.wait:
            return common.EXIT_OK
        record = watch.follow_to_end(store, record)
    return _report_end(store, record, args.preview, args.verbose)


def _report_end(store: runs.RunStore, record: runs.RunRecord,
                preview: Optional[int] = None, verbose: bool = False) -> int:
    """How a run that ended is reported, wherever it ran: its output, its
    counters, what must not be missed, a summary; and its exit code."""
    if record.status == runs.COMPLETED:   # a run that failed stored no output
        for line in store.output(record.run_id):
            print(_preview(line, preview, record.run_id))
    for name, value in record.counters.items():
        print(f'  counter {name} = {value}')
    for banner in common.failure_banners(record):
        print(banner, file=sys.stderr)
    for hook_error in record.hook_errors:
        print(f'!!! A lifecycle hook raised: {hook_error}', file=sys.stderr)
    print(f'Summary: {common.summary(record)}')
    for name, line in common.cost_lines(record):
        print(f'{name}: {line}')
    backup = common.backup_line(record)
    if backup:
        print(f'Backup: {backup}')
    hint = common.retry_hint(record)
    if hint:
        print(f'Retry: {hint}')
    if record.status != runs.COMPLETED:
        if record.dataflow.job_id:
            print(f'Console: {record.dataflow.console_url}', file=sys.stderr)
        else:
            print(f'Log: {run_logs.log_path(record.run_id)}' + (
                '' if verbose else ' (Beam\'s traceback; --verbose shows it here)'),
                file=sys.stderr)
    return common.exit_code(record)


def _refuse_record(args, reason: str) -> None:
    # Where this setting's runs keep their records.
    launcher.refuse(common.store(args), args.run_id, reason)


def cmd_runs(args) -> int:
    records = follow.recent(common.store(args), args.limit, args.job)
    common.print_table(
        ('RUN ID', 'STATUS', 'STARTED', 'SECONDS', 'LINES', 'FAILED'),
        [(r.run_id, r.status, common.when(r.started_msec or r.created_msec),
          common.seconds(r), str(r.output_line_count or 0), str(r.error_count))
         for r in records],
        '(no runs yet: start one with `beam-jobs run JOB`)')
    return common.EXIT_OK


def cmd_status(args) -> int:
    store = common.store(args)
    record = follow.current(store, args.run_id)
    if args.watch and not record.is_terminal:
        record = watch.follow_to_end(store, record, every=args.every)
    elif args.every is not None and not args.watch:
        raise common.UsageError('--every goes with --watch.')
    _print_status(record)
    if args.watch:
        return common.exit_code(record)
    return common.EXIT_OK


def _print_status(record: runs.RunRecord) -> None:
    fields = [
        ('run', record.run_id), ('job', record.job_name),
        ('status', record.status), ('runner', record.runner or '-'),
        ('created', common.when(record.created_msec)),
        ('queued', common.when(record.queued_msec)),
        ('started', common.when(record.started_msec)),
        ('finished', common.when(record.finished_msec)),
        ('seconds', common.seconds(record)), ('shard count', record.shard_count),
        ('params', json.dumps(record.params, sort_keys=True)),
        ('output lines', record.output_line_count or 0),
        ('failed items', record.error_count),
    ]
    optional = [('error lines', record.error_line_count),
                ('source', sources.text(record.source) if record.source else None),
                ('backup', common.backup_line(record)),
                ('revert of', record.revert_of), ('retry of', record.retry_of),
                ('retry', common.retry_hint(record)),
                ('gate', ', '.join(f'{k}: {v}' for k, v in record.gate.items())),
                ('dataflow job', record.dataflow.job_id),
                ('console', record.dataflow.console_url),
                ('progress', run_text.progress_text(record)),
                ('stages', run_text.stages_text(record.dataflow.stages)),
                ('usage', run_text.usage_text(record.usage)),
                *common.cost_lines(record),
                ('canceled by', record.canceled_by),
                ('error', record.error), ('log', None if record.dataflow.job_id
                                          else record.log_file),
                ('dataflow api', record.dataflow.follow_error)]
    fields += [(name, value) for name, value in optional if value]
    fields += [('cause', run_text.failure_text(failure))
               for failure in record.dataflow.failure_messages]
    fields += [('hook error', error) for error in record.hook_errors]
    for name, value in fields:
        print(f'{name:>13}: {value}')
    attempted = (' (attempted: the job is still running)'
                 if record.dataflow.counters_attempted else '')
    for name, value in record.counters.items():
        print(f'{"counter":>13}: {name} = {value}{attempted}')
    if record.is_terminal:
        for banner in common.failure_banners(record):
            print(banner, file=sys.stderr)


def cmd_output(args) -> int:
    store = common.store(args)
    record = follow.current(store, args.run_id)
    for line in store.output(args.run_id):
        print(line)
    if record.is_terminal:
        for banner in common.failure_banners(record):
            print(banner, file=sys.stderr)
    return common.EXIT_OK


# Rehearsal ids name themselves (records/rehearsals.py: `rehearsal-JOB-…`).
REHEARSAL_PREFIX = 'rehearsal-'


def cmd_cancel(args) -> int:
    if args.run_id.startswith(REHEARSAL_PREFIX):
        return _cancel_rehearsal(args)
    try:
        common.registry(args)   # so the job's cancel hooks can be found
    except registry_lib.UnknownJobError:
        pass
    record = launcher.cancel_run(common.store(args), args.run_id, args.user)
    print(f'Run {record.run_id}: {record.status}')
    return common.EXIT_OK if record.status == runs.CANCELED else common.EXIT_FAILED


def _cancel_rehearsal(args) -> int:
    """`beam-jobs cancel REHEARSAL_ID`: the run in flight stops (on Dataflow,
    its job), no further run starts, and the rehearsal ends failed."""
    store = rehearsal_records.RehearsalStore(record_stores.signoff_target(args.namespace))
    record = store.get(args.run_id)
    context = rehearse_lib.context_for(record, common.registry(args).get)
    if context is None:
        raise common.UsageError(
            f'Rehearsal {record.rehearsal_id} runs on {record.machine}, on its own '
            'emulator: cancel it there (or press Ctrl-C where it runs).')
    record = rehearse_lib.cancel(context, record.rehearsal_id, args.user)
    print(f'Rehearsal {record.rehearsal_id}: {record.verdict} '
          f'({"; ".join(record.reasons)})')
    return common.EXIT_OK if record.canceled else common.EXIT_FAILED
