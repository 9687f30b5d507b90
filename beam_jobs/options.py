"""Pipeline options: the local runner path, chosen explicitly.

Beam's `DirectRunner` first tries to download the Prism runner from the
internet and only then falls back. Local runs must never depend on the
network, so when no runner is named we pick the FnApiRunner (the runner the
DirectRunner falls back to) ourselves. Every flag a user passes goes through
to Beam untouched.
"""

from __future__ import annotations

from typing import Sequence

from apache_beam.options.pipeline_options import DirectOptions
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import StandardOptions

LOCAL_RUNNER = 'FnApiRunner'
LOCAL_RUNNERS = frozenset({
    'FnApiRunner', 'DirectRunner', 'BundleBasedDirectRunner',
    'SwitchingDirectRunner', 'TestDirectRunner', 'PrismRunner'})
# See bench/README.md for the measurements behind these defaults.
LOCAL_RUNNING_MODE = 'in_memory'
LOCAL_NUM_WORKERS = 1


def _given(args: Sequence[str], flag: str) -> bool:
    return any(arg == flag or arg.startswith(flag + '=') for arg in args)


def pipeline_options(pipeline_args: Sequence[str] = ()) -> PipelineOptions:
    """Options for a run: the user's flags, plus our local defaults."""
    args = list(pipeline_args)
    options = PipelineOptions(args)
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = LOCAL_RUNNER
    if is_local(options):
        direct = options.view_as(DirectOptions)
        if not _given(args, '--direct_running_mode'):
            direct.direct_running_mode = LOCAL_RUNNING_MODE
        if not _given(args, '--direct_num_workers'):
            direct.direct_num_workers = LOCAL_NUM_WORKERS
    return options


def runner_name(options: PipelineOptions) -> str:
    runner = options.view_as(StandardOptions).runner or LOCAL_RUNNER
    return runner if isinstance(runner, str) else type(runner).__name__


def is_local(options: PipelineOptions) -> bool:
    return runner_name(options).rsplit('.', 1)[-1] in LOCAL_RUNNERS
