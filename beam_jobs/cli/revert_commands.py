"""`beam-jobs revert RUN_ID`: put back what a run wrote, from its before-images."""

from __future__ import annotations

import sys
import argparse
from typing import Sequence

from beam_jobs import refusals
from beam_jobs.cli import common
from beam_jobs.cli import run_commands
from beam_jobs.cli.progress_bar import TerminalBar
from beam_jobs.compile import revert_steps
from beam_jobs.lifecycle import launcher
from beam_jobs.lifecycle import revert as revert_lib
from beam_jobs.records import runs

# The output names this many conflicts; the stored output keeps them all.
SHOWN_CONFLICTS = 50


def add_parsers(commands, parent) -> None:
    revert = commands.add_parser(
        'revert', parents=[parent],
        help='put back what a run wrote (its before-images), as a run of its own',
        description='Revert RUN_ID: each entity it put or deleted gets back the '
        'value it had just before (an entity it created is deleted), as a run '
        'of its own with its own record. An entity changed since by someone '
        'else is a conflict: left as it is and named, unless --force. Any '
        'further flags go to Beam, as for `run` (e.g. --runner=DataflowRunner).')
    revert.add_argument('run_id', metavar='RUN_ID')
    revert.add_argument('--dry-run', '--dry_run', dest='dry_run', action='store_true',
                        help='say what it would put back and what conflicts; write nothing')
    revert.add_argument('--force', action='store_true',
                        help='put before-images back over later changes too')
    revert.add_argument('--reason', default=None,
                        help='why (kept in the record; needed, and audited, in production)')
    revert.add_argument('--user', default=None,
                        help='who reverts (default: this machine\'s user)')
    revert.add_argument('--verbose', action='store_true',
                        help='show Beam\'s log here, not only in the run\'s log file')
    run_commands.add_backup_flags(revert)
    # The console creates the record and starts this command to run it.
    revert.add_argument('--run-id', dest='new_run_id', default=None, help=argparse.SUPPRESS)
    revert.set_defaults(handler=cmd_revert, own_flags=common.own_flags(revert),
                        takes_pipeline_flags=True)


def _lookup(args):
    """The job class of a name (raising if there is no registry, or no such
    job: a revert then goes on without the job's code)."""
    return lambda name: common.registry(args).get(name)


def cmd_revert(args, pipeline_args: Sequence[str]) -> int:
    store = common.store(args, pipeline_args)
    try:
        plan = revert_lib.plan_revert(
            store, args.run_id, job_lookup=_lookup(args), dry_run=args.dry_run,
            force=args.force, reason=args.reason, user=args.user,
            pipeline_args=pipeline_args, own_flags=args.own_flags,
            backup_location=args.backup_location, no_backup=args.no_backup)
    except refusals.Refused as error:
        if args.new_run_id:   # the console made the record: it must not stay new
            launcher.refuse(store, args.new_run_id, str(error))
        raise
    run_id = args.new_run_id or store.create(plan.job_name).run_id
    print(f'Run {run_id}: {"dry run of a " if args.dry_run else ""}revert of run '
          f'{args.run_id} ({plan.source.manifest.writes} writes kept at '
          f'{plan.source.manifest.location})', flush=True)
    bar = TerminalBar()
    try:
        record = launcher.start(plan, store, run_id, listeners=[bar], verbose=args.verbose)
    except launcher.RunCanceledError as error:
        print(f'!!! REVERT CANCELED: {error}', file=sys.stderr)
        return common.EXIT_FAILED
    finally:
        bar.close()
    if record.dataflow.job_id and not record.is_terminal:
        print(f'Submitted to Dataflow as job {record.dataflow.job_id}: follow it with '
              f'`beam-jobs status {run_id} --watch`.')
        return common.EXIT_OK
    lines = list(store.output(run_id)) if record.status == 'completed' else []
    conflicts = [line for line in lines if line.startswith(revert_steps.CONFLICT)]
    for line in lines:
        if not line.startswith(revert_steps.CONFLICT):
            print(line)
    for line in conflicts[:SHOWN_CONFLICTS]:
        print(line)
    if len(conflicts) > SHOWN_CONFLICTS:
        print(f'... and {len(conflicts) - SHOWN_CONFLICTS} more conflicts '
              f'(all of them: beam-jobs output {run_id})')
    verb = 'would be' if args.dry_run else ('forced' if args.force else 'left as they are')
    if conflicts:
        print(f'!!! {len(conflicts)} CONFLICT(S): changed since run {args.run_id} '
              f'wrote them; {verb}.', file=sys.stderr)
    for banner in common.failure_banners(record):
        print(banner, file=sys.stderr)
    print(f'Summary: {common.summary(record)}')
    backup = common.backup_line(record)
    if backup:
        print(f'Backup: {backup}')
    code = common.exit_code(record)
    if code == common.EXIT_OK and conflicts and not args.force:
        return common.EXIT_ITEMS_FAILED
    return code
