"""What can stop a run from outside its pipeline: signals, and a lost Datastore.

`beam-jobs cancel` sends SIGTERM and Ctrl-C sends SIGINT; both become a stop
the launcher records as `canceled`. StopOnLostDatastore turns an emulator
that stops answering into a stop recorded as `failed`, within seconds rather
than after Beam's minutes of retries.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading
import types
from typing import Iterator, Optional

from beam_jobs import emulator
from beam_jobs import stop_request
from beam_jobs.records import runs


StopRun = stop_request.StopRun


@dataclasses.dataclass
class Stop:
    """Why a run was stopped from outside its pipeline."""

    reason: str
    status: str = runs.CANCELED


# SIGUSR1 is how StopOnLostDatastore (below) stops the main thread's run.
LOST_SIGNAL = signal.SIGUSR1


@contextlib.contextmanager
def stop_on_signals(requested: list[Stop]) -> Iterator[None]:
    """Turn SIGTERM (`beam-jobs cancel`), SIGINT (Ctrl-C) and a lost
    Datastore into a stop.

    Beam may wrap whatever the handler raises in its own error, so the
    reason is also noted in `requested`: that, not the exception's type,
    tells the caller how the run ended.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reasons: dict[int, str] = {signal.SIGTERM: 'stopped by SIGTERM (beam-jobs cancel)',
                               signal.SIGINT: 'interrupted (Ctrl-C)'}
    raised: list[bool] = []     # raised once; the map step raises it again if dropped

    def handler(signum: int, frame: Optional[types.FrameType]) -> None:
        if signum in reasons and not requested:
            requested.append(Stop(reasons[signum]))
        if requested and not raised:
            raised.append(True)
            # Noted too: a StopRun raised inside a destructor is dropped,
            # and the map step raises it again (stop_request.py).
            stop_request.ask(requested[0].reason)
            raise StopRun(requested[0].reason)
    previous = {sig: signal.signal(sig, handler)
                for sig in (*reasons, LOST_SIGNAL)}
    stop_request.clear()
    try:
        yield
    finally:
        stop_request.clear()
        for sig, old in previous.items():
            signal.signal(sig, old)


class StopOnLostDatastore:
    """Stops a local run whose emulator stops answering.

    Beam retries a lost Datastore for one to two minutes before it gives
    up; a coordinator should not wait that long to learn the database is
    gone. Checked every second, three misses in a row stop the run.
    """

    INTERVAL_SECS = 1.0
    MISSES = 3

    def __init__(self, host: Optional[str], requested: list[Stop]):
        self._host = host
        self._requested = requested
        self._done = threading.Event()
        self.lost = False
        self._thread = threading.Thread(target=self._check, daemon=True,
                                        name='lost-datastore-stop')

    def __enter__(self) -> StopOnLostDatastore:
        if self._host and threading.current_thread() is threading.main_thread():
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()

    def _check(self) -> None:
        misses = 0
        while not self._done.wait(self.INTERVAL_SECS):
            misses = 0 if self._host and emulator.is_serving(self._host) else misses + 1
            if misses >= self.MISSES and not self._done.is_set():
                self.lost = True
                running = emulator.attached()
                log = f' (its log: {running.log_file})' if running else ''
                self._requested.append(Stop(
                    f'Lost the Datastore: the emulator on {self._host} stopped '
                    f'answering during the run{log}. Start it again (any '
                    'beam-jobs command does), check `beam-jobs emulator '
                    'status`, then rerun the job.', runs.FAILED))
                os.kill(os.getpid(), LOST_SIGNAL)
                return
