"""Apache Beam's state samplers, stopped when a run is cut short.

Each bundle the local runner processes starts a `StateSampler`, whose
sampling thread is not a daemon, and stops it in a `finally`. A run stopped
by a signal (`beam-jobs cancel`, Ctrl-C) raises in whatever the main thread
is doing, and when that is the moment between the sampler's start and the
`started` flag its `finally` reads, nobody ever stops it: the process then
never exits (a canceled run's process was found waiting on one an hour and
a half later, its emulator still attached). A sampler is found through the
thread that runs it: `threading.Thread._target` (CPython's name for the
function a thread runs, since Python 2) is the sampler's bound `run`.
"""

from __future__ import annotations

import threading

from beam_jobs import compat

WRITTEN_FOR = '2.77.0'


def _thread_keeps_its_target() -> bool:
    thread = threading.Thread(target=_thread_keeps_its_target)
    return getattr(thread, '_target') is _thread_keeps_its_target


def _sampler_has_its_flags() -> bool:
    from apache_beam.runners.worker import statesampler  # pylint: disable=import-outside-toplevel
    sampler = statesampler.StateSampler('check', None)
    return sampler.started is False and sampler.finished is False


compat.require('apache-beam', WRITTEN_FOR, __name__, [
    ('threading.Thread._target', _thread_keeps_its_target),
    ('StateSampler.started, .finished', _sampler_has_its_flags),
])


def stop_state_samplers() -> int:
    """Stop every state sampler of this process whose thread still runs;
    returns how many. Each stops within its sampling period."""
    from apache_beam.runners.worker import statesampler  # pylint: disable=import-outside-toplevel
    stopped = 0
    for thread in threading.enumerate():
        sampler = getattr(getattr(thread, '_target', None), '__self__', None)
        if (not isinstance(sampler, statesampler.StateSampler) or not thread.is_alive()
                or sampler.finished):
            continue
        sampler.stop()
        stopped += 1
    return stopped
