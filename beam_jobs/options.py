"""Pipeline options: the local runner path, chosen explicitly.

Beam's `DirectRunner` first tries to download the Prism runner from the
internet and only then falls back. Local runs must never depend on the
network, so when no runner is named we pick the FnApiRunner (the runner the
DirectRunner falls back to) ourselves. Every flag a user passes goes through
to Beam untouched, once `flags.check` has found Beam knows it.
"""

from __future__ import annotations

import os
import pathlib
import shlex
from typing import Sequence

from apache_beam.options.pipeline_options import DirectOptions
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.runners.runner import create_runner

from beam_jobs import config
from beam_jobs import flags

LOCAL_RUNNER = 'FnApiRunner'
PRISM_FIRST_RUNNERS = frozenset({'DirectRunner', 'SwitchingDirectRunner'})
LOCAL_RUNNERS = frozenset({
    'FnApiRunner', 'DirectRunner', 'BundleBasedDirectRunner',
    'SwitchingDirectRunner', 'TestDirectRunner', 'PrismRunner'})
# See bench/README.md for the measurements behind these defaults. A local
# run is bound by two CPU users of about the same size: the emulator's JVM
# answering key-range queries and Python decoding entities and running
# `map`. Two `multi_threading` workers overlap them and measured ~35% faster,
# but Beam 2.77's multi-threaded FnApiRunner corrupted its own data stream
# on a 1,000,000-element pipeline here ("Invalid PaneInfoEncoding: 7"), and
# a coordinator's run must not die of a runner bug. So one in-memory worker
# is the default; `--direct_running_mode=multi_threading
# --direct_num_workers=2` opts in. Processes cost seconds of start-up each
# and compete with the JVM for the same two cores. The stored report does
# not depend on this choice: every line carries its place in it
# (transforms.ERROR_ORDER).
LOCAL_RUNNING_MODE = 'in_memory'
LOCAL_NUM_WORKERS = 1
# A run over an export has no JVM beside it, so its map step could take one
# worker process per core: on two cores 1.3x faster at 100,000 explorations
# and 1.7x at 1,000,000, no faster at 20,000. But every worker holds Beam,
# ndb and the job (~180 MiB), and Beam's runner process holds the whole
# shuffle besides them: the audit of a million peaked at 2.1 GiB with two
# workers against 1.0 GiB in one process (bench/README.md). Memory is the
# limit a laptop meets first, so by default an export run stays in one
# process; the `export_processes_from` setting (an entity count) opts in.
EXPORT_PROCESSES_FROM = 0
# With no --runner flag, the `runner` setting (config.py) names the runner;
# a Dataflow run also gets these settings, named like the Beam flag each
# stands for, as flags placed before the user's: a flag the user gives wins.
DATAFLOW_RUNNERS = frozenset({'DataflowRunner', 'TestDataflowRunner'})
DATAFLOW_SETTINGS = ('project', 'region', 'temp_location', 'staging_location',
                     'service_account_email', 'machine_type',
                     'max_num_workers', 'setup_file')
# A guardrail on by default: a mistake on Dataflow stays this small unless
# the `max_num_workers` setting (or the flag) says otherwise.
DEFAULT_SETTINGS = {'max_num_workers': 20}


def _given(args: Sequence[str], flag: str) -> bool:
    return any(arg == flag or arg.startswith(flag + '=') for arg in args)


def pipeline_options(pipeline_args: Sequence[str] = (),
                     own_flags: Sequence[str] = (),
                     command: str = 'beam-jobs run') -> PipelineOptions:
    """Options for a run: the user's flags, plus our local defaults.

    A flag Beam does not define, or one whose value does not parse, is a
    `flags.FlagError` (a ValueError): Beam would drop the one and exit the
    process on the other. `own_flags` (the command's own) are suggested
    first for a mistyped flag.
    """
    args = list(pipeline_args)
    flags.check(args, own_flags=own_flags, command=command)
    options = PipelineOptions(args)
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = config.get('runner') or LOCAL_RUNNER
    if standard.runner in PRISM_FIRST_RUNNERS:
        # These would try to download Prism before falling back to the
        # FnApiRunner: run that fallback directly, never touching the network.
        standard.runner = LOCAL_RUNNER
    _check_runner(standard.runner)
    if is_dataflow(options):
        runner = standard.runner
        settings = dataflow_settings()
        try:
            flags.check(settings)
        except flags.FlagError as error:
            raise flags.FlagError(
                f'Bad Dataflow settings ({" ".join(settings)}: {error}): fix '
                'them under [tool.beam-jobs] in pyproject.toml or in the '
                'BEAM_JOBS_* environment variables.') from None
        options = PipelineOptions(settings + args)
        options.view_as(StandardOptions).runner = runner
    if is_local(options):
        direct = options.view_as(DirectOptions)
        if not _given(args, '--direct_running_mode'):
            direct.direct_running_mode = LOCAL_RUNNING_MODE
        if not _given(args, '--direct_num_workers'):
            direct.direct_num_workers = LOCAL_NUM_WORKERS
    return options


def use_processes_for_export(options: PipelineOptions, pipeline_args: Sequence[str],
                             entities: int) -> bool:
    """For a local run over an export of `entities`: one worker process per
    core, unless the user chose the running mode or the export is small.
    Returns whether it did."""
    args = list(pipeline_args)
    threshold = int(config.get('export_processes_from', EXPORT_PROCESSES_FROM))
    cores = os.cpu_count() or 1
    if (not is_local(options) or threshold <= 0 or entities < threshold or cores < 2
            or _given(args, '--direct_running_mode')
            or _given(args, '--direct_num_workers')):
        return False
    direct = options.view_as(DirectOptions)
    direct.direct_running_mode, direct.direct_num_workers = 'multi_processing', cores
    return True


def _check_runner(runner) -> None:
    """A runner name Beam cannot resolve is a bad flag value, refused now
    rather than after a run was recorded."""
    if not isinstance(runner, str):
        return
    try:
        create_runner(runner)
    except (ValueError, ImportError) as error:
        raise flags.FlagError(f'--runner={runner} is not a runner Beam knows '
                              f'({error}): fix the flag or the `runner` '
                              'setting.') from None


def runner_name(options: PipelineOptions) -> str:
    """The runner's class name, however the flag spelled it."""
    runner = options.view_as(StandardOptions).runner or LOCAL_RUNNER
    name = runner if isinstance(runner, str) else type(runner).__name__
    return name.rsplit('.', 1)[-1]


def is_local(options: PipelineOptions) -> bool:
    return runner_name(options) in LOCAL_RUNNERS


def is_dataflow(options: PipelineOptions) -> bool:
    return runner_name(options) in DATAFLOW_RUNNERS


def dataflow_settings() -> list[str]:
    """The configured Dataflow settings as flags, to go before the user's.

    `bucket` stands for `temp_location = gs://BUCKET/tmp`; `setup_file`
    defaults to the project's own setup.py, so workers can import the
    framework and the jobs; `dataflow_args` holds any further Beam flags.
    """
    root = config.project_dir()
    settings = []
    for name in DATAFLOW_SETTINGS:
        value = config.get(name, DEFAULT_SETTINGS.get(name))
        if name == 'setup_file' and value:
            value = (root or pathlib.Path.cwd()) / value
        if value not in (None, ''):
            settings.append(f'--{name}={value}')
    bucket = config.get('bucket')
    if bucket and not config.get('temp_location'):
        bucket = str(bucket).removeprefix('gs://').rstrip('/')
        settings.append(f'--temp_location=gs://{bucket}/tmp')
    if not config.get('setup_file') and root and (root / 'setup.py').exists():
        settings.append(f'--setup_file={root / "setup.py"}')
    extra = config.get('dataflow_args') or []
    settings += shlex.split(extra) if isinstance(extra, str) else [str(a) for a in extra]
    return settings
