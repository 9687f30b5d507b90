"""What every `beam-jobs` command shares: the parser's manners, the registry,
the run records, and how a record is shown."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from typing import Iterator, Optional, Sequence

from beam_jobs import config
from beam_jobs import counters as counters_lib
from beam_jobs import readable
from beam_jobs import refusals
from beam_jobs import registry as registry_lib
from beam_jobs import target as target_lib
from beam_jobs.compat import argparse as argparse_compat
from beam_jobs.io import namespaces as namespaces_lib
from beam_jobs.lifecycle import estimate
from beam_jobs.lifecycle import record_stores
from beam_jobs.records import runs

# The exit codes (the README's table; tests/cli/test_common.py checks it).
EXIT_OK, EXIT_FAILED, EXIT_ITEMS_FAILED = 0, 1, 3
EXIT_USAGE = refusals.EXIT_CODE   # refused: one sentence, nothing changed


class UsageError(refusals.Refused):
    """A command line that cannot be run as given."""


class Parser(argparse.ArgumentParser):
    """argparse, refusing instead of exiting, and never guessing.

    Abbreviations are off: `--dry` must not quietly mean `--dry-run`, and a
    prefix of a Beam flag must reach the check that refuses unknown flags.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault('allow_abbrev', False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(f'{message} (see `{self.prog} --help`).')


def global_options(suppress: bool = False) -> argparse.ArgumentParser:
    """--registry and --namespace, accepted before or after the command.

    After it, they default to SUPPRESS so they do not overwrite a value
    given before it.
    """
    parent = Parser(add_help=False)
    default = argparse.SUPPRESS if suppress else None
    parent.add_argument('--registry', default=default,
                        help='module that holds the job registry (default: '
                        'BEAM_JOBS_REGISTRY, or [tool.beam-jobs] registry in '
                        'pyproject.toml)')
    parent.add_argument('--namespace', default=default,
                        help='Datastore namespace for data and run records '
                        '(default: DATASTORE_NAMESPACE)')
    parent.add_argument('--database', default=default,
                        help='Firestore in Datastore mode database for data and '
                        'run records (default: DATASTORE_DATABASE, or [tool.beam-jobs] '
                        'database; otherwise the project\'s (default) database)')
    return parent


@contextlib.contextmanager
def database_of(args) -> Iterator[None]:
    """`--database` for the length of one command: every Datastore the
    command reaches (target.run_database) is in that database."""
    database = getattr(args, 'database', None)
    if not database:
        yield
        return
    saved = os.environ.get(target_lib.DATABASE_ENV)
    os.environ[target_lib.DATABASE_ENV] = database
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(target_lib.DATABASE_ENV, None)
        else:
            os.environ[target_lib.DATABASE_ENV] = saved


def own_flags(parser: argparse.ArgumentParser) -> list[str]:
    return argparse_compat.long_options(parser)


def parse_params(pairs: Sequence[str]) -> dict:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition('=')
        if not sep or not key:
            raise UsageError(f'--param {pair!r} is not KEY=VALUE: write it as, '
                             'e.g., --param batch=3.')
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def registry(args) -> registry_lib.JobRegistry:
    module = args.registry or config.get('registry')
    if not module:
        raise registry_lib.UnknownJobError(
            'No job registry is configured: pass --registry MODULE, set '
            'BEAM_JOBS_REGISTRY, or add `registry = "..."` under '
            '[tool.beam-jobs] in pyproject.toml.')
    return registry_lib.load(module)


def store(args, pipeline_args: Sequence[str] = ()) -> runs.RunStore:
    """The run records these commands read: the configured runner's."""
    return record_stores.configured_run_store(pipeline_args, args.namespace)


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]],
                when_empty: str) -> None:
    """Columns padded to their widest cell; `when_empty` if there are no rows."""
    table = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print('  '.join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if not rows:
        print(when_empty)


def when(msec: Optional[int]) -> str:
    return readable.when(msec)


def seconds(record: runs.RunRecord) -> str:
    return readable.seconds(record.seconds)


def _plural(count: int, one: str, many: str) -> str:
    return f'{count} {one if count == 1 else many}'


def summary(record: runs.RunRecord) -> str:
    """`completed: read ExplorationModel 3000; 20 output lines; 0 failed
    items; 4.1 s` (and `; N error line(s)` when the job reported any;
    `read retries N` after the reads when a query had to be asked again)."""
    reads = ', '.join(f'{kind} {value}' for kind, value in
                      counters_lib.entities_read(record.counters).items()) or 'nothing'
    spaces = namespaces_lib.read_counts(record.counters)
    if spaces:
        reads += ' (' + ', '.join(f'namespace {space} {value}'
                                  for space, value in sorted(spaces.items())) + ')'
    retries = record.counters.get(counters_lib.READ_RETRIES)
    if retries:
        reads += f'; read retries {retries}'
    errors = (f'{_plural(record.error_line_count, "error line", "error lines")}; '
              if record.error_line_count else '')
    return (f'{record.status}: read {reads}; '
            f'{record.output_line_count or 0} output lines; '
            f'{record.error_count} failed items; {errors}{seconds(record)} s')


def backup_line(record: runs.RunRecord) -> Optional[str]:
    """Where a run's before-images are and how to use them, in one line
    (None for a run that wrote to no Datastore)."""
    backup = record.backup or {}
    state, location = backup.get('state'), backup.get('location')
    if state == 'off':
        return f'none ({backup.get("reason")})'
    if state == 'keeping':
        return f'being kept at {location}'
    if state == 'unfinished':
        return f'at {location}, but {backup.get("error")}'
    if state != 'kept' or not backup.get('writes'):
        return None    # kept nothing: the run wrote nothing
    kinds = ', '.join(
        f'{kind} ' + ' '.join(f'{counts[op]} {op}' for op in ('put', 'delete') if counts.get(op))
        for kind, counts in sorted((backup.get('kinds') or {}).items()))
    undo = f'; undo: beam-jobs revert {record.run_id} --dry-run'
    return (f'before-images of {backup.get("writes", 0)} writes at {location}'
            f'{" (" + kinds + ")" if kinds else ""}{undo}')


def cost_lines(record: runs.RunRecord) -> list[tuple[str, str]]:
    """A Dataflow run's estimate beside what it reported, its guardrails
    and, while it goes, the budget left: `(name, text)` pairs."""
    found = [('estimate', estimate.figures_text(record.dataflow.estimate)),
             ('vs actual', estimate.beside_actuals(record.dataflow.estimate, record.usage)),
             ('guardrails', estimate.guardrails_text(record.dataflow.budget)),
             ('budget left', None if record.is_terminal
              else estimate.budget_left_text(record.dataflow.budget, record.usage))]
    return [(name, text) for name, text in found if text]


def retry_hint(record: runs.RunRecord) -> Optional[str]:
    """How to finish a run that failed midway, or whose items failed."""
    if not (record.backup or {}).get('location') or record.revert_of \
            or record.params.get('dry_run'):
        return None
    if record.status in (runs.FAILED, runs.CANCELED) or record.error_count:
        return (f'finish it (only what is left): beam-jobs run {record.job_name} '
                f'--retry-failed {record.run_id}')
    return None


def failure_banners(record: runs.RunRecord) -> list[str]:
    """What must not be missed, one `!!!` line each: failed items, error lines
    in the output, a run that did not complete."""
    if record.status != runs.COMPLETED:
        return [f'!!! RUN {record.status.upper()}: {record.error or "no reason recorded"}']
    banners = []
    if record.error_count:
        banners.append(f'!!! {record.error_count} ITEM(S) FAILED: each is an ERROR line '
                       f'in the output (`beam-jobs output {record.run_id}`).')
    if record.error_line_count:
        banners.append(f'!!! {record.error_line_count} ERROR LINE(S) in the job\'s output: '
                       f'it reported errors (`beam-jobs output {record.run_id}`).')
    return banners


def exit_code(record: runs.RunRecord) -> int:
    """0 all well; 3 completed with failed items or error lines; 1 not completed."""
    if record.status != runs.COMPLETED:
        return EXIT_FAILED
    return EXIT_ITEMS_FAILED if record.error_count or record.error_line_count else EXIT_OK
