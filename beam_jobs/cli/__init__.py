"""`beam-jobs`: list, run and follow one-off jobs from the command line.

A thin face: each command group lives in its own module and calls the same
launcher, run records and registry the legacy API and the console use.
Commands that run a job parse their own flags with `parse_known_args` and
hand the rest to Beam, once `flags.check` has found Beam knows each of them.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Optional, Sequence

from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions

from beam_jobs import failures
from beam_jobs import refusals
from beam_jobs.cli import common
from beam_jobs.cli import emulator_commands
from beam_jobs.cli import estimate_commands
from beam_jobs.cli import rehearsal_commands
from beam_jobs.cli import revert_commands
from beam_jobs.cli import run_commands
from beam_jobs.cli import serve_commands
from beam_jobs.cli import signoff_commands
from beam_jobs.lifecycle import dataflow_settings

# Kept for callers that compare exit codes.
EXIT_OK, EXIT_FAILED = common.EXIT_OK, common.EXIT_FAILED
EXIT_USAGE, EXIT_ITEMS_FAILED = common.EXIT_USAGE, common.EXIT_ITEMS_FAILED


def _parser() -> common.Parser:
    parser = common.Parser(
        prog='beam-jobs', parents=[common.global_options()],
        description='Run App Engine-style one-off jobs on Apache Beam.')
    commands = parser.add_subparsers(dest='command', required=True,
                                     metavar='COMMAND')
    parent = common.global_options(suppress=True)
    run_commands.add_parsers(commands, parent)
    revert_commands.add_parsers(commands, parent)
    emulator_commands.add_parsers(commands, parent)
    rehearsal_commands.add_parsers(commands, parent)
    estimate_commands.add_parsers(commands, parent)
    signoff_commands.add_parsers(commands, parent)
    serve_commands.add_parsers(commands, parent)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    # Beam's Datastore query splitter calls a deprecated client API; the
    # warning says nothing a job's user can act on.
    warnings.filterwarnings('ignore', message='.*positional arguments.*')
    warnings.filterwarnings('ignore', module='google.cloud.datastore.query')
    try:
        args, extra = _parser().parse_known_args(argv)
        if not getattr(args, 'takes_pipeline_flags', False) and extra:
            raise common.UsageError(
                f'`beam-jobs {args.command}` does not take '
                f'{" ".join(extra)} (see `beam-jobs {args.command} --help`).')
        with common.database_of(args):
            if getattr(args, 'takes_pipeline_flags', False):
                return args.handler(args, extra)
            return args.handler(args)
    except refusals.Refused as error:
        print(f'beam-jobs: {error}', file=sys.stderr)
        return error.exit_code
    except ValueError as error:
        # Not ours, but still the input's: Beam's options, the standard
        # library and ndb refuse a value a user gave (a job's params reach
        # them) with a bare ValueError, which says what is wrong.
        print(f'beam-jobs: {error}', file=sys.stderr)
        return common.EXIT_USAGE
    except auth_exceptions.DefaultCredentialsError:
        print('beam-jobs: ' + dataflow_settings.NO_CREDENTIALS.format(
            what='reading run records in a Google Cloud project'), file=sys.stderr)
        return common.EXIT_USAGE
    except (api_exceptions.GoogleAPICallError, api_exceptions.RetryError) as error:
        print(f'beam-jobs: {failures.describe(error)}', file=sys.stderr)
        return common.EXIT_FAILED
    except BrokenPipeError:
        # The reader stopped reading (`beam-jobs runs | head`): nothing is
        # wrong, and Python must not complain again when it flushes stdout.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass   # stdout is not a file (a test's capture)
        return 0
