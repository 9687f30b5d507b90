"""`beam-jobs`: list, run and follow one-off jobs from the command line.

`run` parses its own flags with `parse_known_args` and hands the rest to
Beam untouched, so every pipeline flag a user knows works as they expect.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import warnings
from typing import Optional, Sequence

from beam_jobs import config
from beam_jobs import dataflow
from beam_jobs import emulator
from beam_jobs import launcher
from beam_jobs import registry as registry_lib
from beam_jobs import runs

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ITEMS_FAILED = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='beam-jobs',
        description='Run App Engine-style one-off jobs on Apache Beam.')
    parser.add_argument('--registry', help='module that holds the job registry '
                        '(default: BEAM_JOBS_REGISTRY, or [tool.beam-jobs] '
                        'registry in pyproject.toml)')
    parser.add_argument('--namespace', help='Datastore namespace for data and '
                        'run records (default: DATASTORE_NAMESPACE)')
    commands = parser.add_subparsers(dest='command', required=True)
    commands.add_parser('list', help='list the registered jobs')
    run = commands.add_parser(
        'run', help='run a job (any further flags go to Beam)',
        description='Run JOB to the end and print its output. Flags this '
        'command does not know (e.g. --runner, --direct_num_workers) are '
        'passed to Beam untouched.')
    run.add_argument('job')
    run.add_argument('--shard-count', type=int, default=None,
                     help='key-range splits per Datastore read (default 8)')
    run.add_argument('--param', action='append', default=[],
                     metavar='KEY=VALUE', help='a job parameter, read with '
                     'get_mapper_param (VALUE is JSON if it parses, else text)')
    run.add_argument('--dry-run', action='store_true',
                     help='report the writes and deletes; write nothing')
    run.add_argument('--preview', type=int, default=None, metavar='CHARS',
                     help='print at most CHARS of each output line (the '
                     'stored output stays whole: see `beam-jobs output`)')
    run.add_argument('--fail-fast', action='store_true',
                     help='stop at the first failed entity instead of '
                     'reporting each failure and going on')
    recent = commands.add_parser('runs', help='recent runs, newest first')
    recent.add_argument('--limit', type=int, default=20)
    recent.add_argument('--job', help='only runs of this job')
    for name, text in (('status', 'one run\'s record'),
                       ('output', 'one run\'s output lines')):
        commands.add_parser(name, help=text).add_argument('run_id')
    cancel = commands.add_parser('cancel', help='stop a run')
    cancel.add_argument('run_id')
    cancel.add_argument('--user', default=None, help='who cancels (recorded)')
    emu = commands.add_parser('emulator', help='the local Datastore emulator')
    emu.add_argument('action', choices=['start', 'stop', 'status'])
    emu.add_argument('--port', type=int, default=None)
    return parser


def _parse_params(pairs: Sequence[str]) -> dict:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition('=')
        if not sep or not key:
            raise ValueError(f'--param {pair!r} is not KEY=VALUE: write it as, '
                             'e.g., --param batch=3.')
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _registry(args) -> registry_lib.JobRegistry:
    module = args.registry or config.get('registry')
    if not module:
        raise registry_lib.UnknownJobError(
            'No job registry is configured: pass --registry MODULE, set '
            'BEAM_JOBS_REGISTRY, or add `registry = "..."` under '
            '[tool.beam-jobs] in pyproject.toml.')
    return registry_lib.load(module)


def _store(args, pipeline_args: Sequence[str] = ()) -> runs.RunStore:
    return launcher.run_store(pipeline_args, args.namespace)


def _when(msec: Optional[int]) -> str:
    if not msec:
        return '-'
    return datetime.datetime.fromtimestamp(msec / 1000).strftime('%Y-%m-%d %H:%M:%S')


def _seconds(record: runs.RunRecord) -> str:
    return '-' if record.seconds is None else f'{record.seconds:.1f}'


def _summary(record: runs.RunRecord) -> str:
    reads = ', '.join(f'{name.split(".", 1)[1]} {value}'
                      for name, value in record.counters.items()
                      if name.startswith('entities_read.')) or 'nothing'
    return (f'{record.status}: read {reads}; '
            f'{record.output_line_count or 0} output lines; '
            f'{record.error_count} failed items; {_seconds(record)} s')


def _failure_banner(record: runs.RunRecord) -> Optional[str]:
    if record.status == runs.COMPLETED and not record.error_count:
        return None
    if record.status == runs.COMPLETED:
        return (f'!!! {record.error_count} ITEM(S) FAILED: each is an ERROR line '
                f'in the output (`beam-jobs output {record.run_id}`).')
    return f'!!! RUN {record.status.upper()}: {record.error or "no reason recorded"}'


def _exit_code(record: runs.RunRecord) -> int:
    if record.status != runs.COMPLETED:
        return EXIT_FAILED
    return EXIT_ITEMS_FAILED if record.error_count else EXIT_OK


def _preview(line: str, limit: Optional[int], run_id: str) -> str:
    if limit is None or len(line) <= limit:
        return line
    return (f'{line[:limit]}… (+{len(line) - limit} characters; whole line: '
            f'beam-jobs output {run_id})')


def cmd_list(args) -> int:
    registry = _registry(args)
    for job in registry:
        kinds = ', '.join(model._get_kind() for model in  # pylint: disable=protected-access
                          job.entity_classes_to_map_over())
        print(f'{job.__name__}\t{kinds}')
    return EXIT_OK


def cmd_run(args, pipeline_args: Sequence[str]) -> int:
    job = _registry(args).get(args.job)
    params = _parse_params(args.param)
    if args.dry_run:
        params['dry_run'] = True
    if args.fail_fast:
        params['fail_fast'] = True
    launcher.check_shard_count(args.shard_count)
    store = _store(args, pipeline_args)
    run_id = store.create(job.__name__).run_id
    print(f'Run {run_id}', flush=True)
    try:
        record = launcher.run_job(job, run_id=run_id, params=params,
                                  shard_count=args.shard_count,
                                  pipeline_args=pipeline_args,
                                  target=store.target)
    except launcher.RunCanceledError as error:
        print(f'!!! RUN CANCELED: {error}', file=sys.stderr)
        return EXIT_FAILED
    if record.dataflow_job_id and not record.is_terminal:
        print(f'Submitted to Dataflow as job {record.dataflow_job_id}\n'
              f'  console: {record.console_url}\n'
              f'  follow:  beam-jobs status {run_id}   (output: beam-jobs '
              f'output {run_id}; stop: beam-jobs cancel {run_id})')
        return EXIT_OK
    if record.status == runs.COMPLETED:   # a run that failed stored no output
        for line in store.output(run_id):
            print(_preview(line, args.preview, run_id))
    for name, value in record.counters.items():
        print(f'  counter {name} = {value}')
    banner = _failure_banner(record)
    if banner:
        print(banner, file=sys.stderr)
    print(f'Summary: {_summary(record)}')
    return _exit_code(record)


def cmd_runs(args) -> int:
    records = _store(args).recent(args.limit, args.job)
    rows = [('RUN ID', 'STATUS', 'STARTED', 'SECONDS', 'LINES', 'FAILED')]
    rows += [(r.run_id, r.status, _when(r.started_msec or r.created_msec),
              _seconds(r), str(r.output_line_count or 0), str(r.error_count))
             for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print('  '.join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if not records:
        print('(no runs yet: start one with `beam-jobs run JOB`)')
    return EXIT_OK


def cmd_status(args) -> int:
    record = _store(args).get(args.run_id)
    fields = [
        ('run', record.run_id), ('job', record.job_name),
        ('status', record.status), ('runner', record.runner or '-'),
        ('created', _when(record.created_msec)),
        ('queued', _when(record.queued_msec)),
        ('started', _when(record.started_msec)),
        ('finished', _when(record.finished_msec)),
        ('seconds', _seconds(record)), ('shard count', record.shard_count),
        ('params', json.dumps(record.params, sort_keys=True)),
        ('output lines', record.output_line_count or 0),
        ('failed items', record.error_count),
    ]
    if record.dataflow_job_id:
        fields.append(('dataflow job', record.dataflow_job_id))
    if record.console_url:
        fields.append(('console', record.console_url))
    if record.canceled_by:
        fields.append(('canceled by', record.canceled_by))
    if record.error:
        fields.append(('error', record.error))
    for name, value in fields:
        print(f'{name:>13}: {value}')
    for name, value in record.counters.items():
        print(f'{"counter":>13}: {name} = {value}')
    banner = _failure_banner(record)
    if banner and record.is_terminal:
        print(banner, file=sys.stderr)
    return EXIT_OK


def cmd_output(args) -> int:
    store = _store(args)
    record = store.get(args.run_id)
    for line in store.output(args.run_id):
        print(line)
    banner = _failure_banner(record)
    if banner and record.is_terminal:
        print(banner, file=sys.stderr)
    return EXIT_OK


def cmd_cancel(args) -> int:
    record = launcher.cancel_run(_store(args), args.run_id, args.user)
    print(f'Run {record.run_id}: {record.status}')
    return EXIT_OK if record.status == runs.CANCELED else EXIT_FAILED


def cmd_emulator(args) -> int:
    if args.action == 'start':
        running = emulator.start_managed(args.port)
        print(f'Emulator running on {running.host} (data in {running.data_dir}).')
        print(f'export DATASTORE_EMULATOR_HOST={running.host} '
              f'DATASTORE_PROJECT_ID={running.project}')
    elif args.action == 'stop':
        stopped = emulator.stop_managed()
        print(f'Stopped the emulator on {stopped.host}.' if stopped
              else 'No emulator was running.')
    else:
        running = emulator.read_managed()
        print(f'Running on {running.host} (data in {running.data_dir}).'
              if running else 'Not running.')
    return EXIT_OK


def main(argv: Optional[Sequence[str]] = None) -> int:
    # Beam's Datastore query splitter calls a deprecated client API; the
    # warning says nothing a job's user can act on.
    warnings.filterwarnings('ignore', message='.*positional arguments.*')
    warnings.filterwarnings('ignore', module='google.cloud.datastore.query')
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != 'run':
        parser.error(f'unrecognized arguments: {" ".join(extra)}')
    try:
        if args.command == 'run':
            return cmd_run(args, extra)
        return globals()[f'cmd_{args.command}'](args)
    except (registry_lib.UnknownJobError, runs.UnknownRunError,
            runs.InvalidTransitionError, emulator.EmulatorError,
            dataflow.DataflowError,
            ValueError) as error:
        print(f'beam-jobs: {error}', file=sys.stderr)
        return EXIT_USAGE


if __name__ == '__main__':
    sys.exit(main())
