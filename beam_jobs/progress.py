"""What a running job reports, shared by the CLI and the console.

A long local run used to show nothing until it ended. Now the map step
counts the entities it has read, per kind, in a process-wide tally (the
default local runner runs it in this process), and a `Reporter` thread hands
that tally every couple of seconds to its listeners: the run record (which
the console shows) and the CLI's bar. The total comes from the source when it
knows it: an export's metadata exactly, the Datastore's kind statistics where
they exist (the emulator keeps none). Runs whose map step runs elsewhere
(Dataflow, local worker processes) report no live progress.

A record's `progress` is `{'read': {kind: n}, 'total': {kind: n or None},
'updated_msec': int}`.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from typing import Callable, Mapping, Optional, Sequence

_read: collections.Counter = collections.Counter()

Listener = Callable[[dict], None]
# How often a run reports (the `progress_interval` setting; 0 turns it off).
DEFAULT_INTERVAL_SECS = 2.0


def count(kind: str) -> None:
    """One entity of `kind` reached the map step (called per element)."""
    _read[kind] += 1


def snapshot(totals: Mapping[str, Optional[int]]) -> dict:
    read = {kind: _read.get(kind, 0) for kind in totals}
    read.update((kind, n) for kind, n in list(_read.items()) if kind not in read)
    return {'read': read, 'total': dict(totals), 'updated_msec': int(time.time() * 1000)}


def describe(progress: Mapping) -> str:
    """`ExplorationModel 12,000 / 20,000 (60%)`, one part per kind."""
    parts = []
    for kind, read in sorted((progress.get('read') or {}).items()):
        total = (progress.get('total') or {}).get(kind)
        parts.append(f'{kind} {read:,}' + (f' / {total:,} ({100 * read // total}%)'
                                           if total else ''))
    return ', '.join(parts) or 'nothing read yet'


class Reporter:
    """Every `interval` seconds while a run runs, tell the listeners how far
    it got. A listener that fails is dropped after saying so on stderr:
    progress must never stop a run."""

    def __init__(self, totals: Mapping[str, Optional[int]],
                 listeners: Sequence[Listener],
                 interval: float = DEFAULT_INTERVAL_SECS):
        self._totals = dict(totals)
        self._listeners = list(listeners)
        self._interval = interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name='progress-reporter')

    def __enter__(self) -> 'Reporter':
        _read.clear()
        if self._listeners:
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def final(self) -> dict:
        """How far the run got when it ended (kept with its end, not sent)."""
        return snapshot(self._totals) if self._listeners else {}

    def _loop(self) -> None:
        # No last report when the run ends: its record then gets the final
        # counts anyway, and a report there would only delay the end.
        while not self._done.wait(self._interval):
            self._tell()

    def _tell(self) -> None:
        progress = snapshot(self._totals)
        for listener in list(self._listeners):
            try:
                listener(progress)
            except Exception as error:  # pylint: disable=broad-except
                self._listeners.remove(listener)
                print(f'(progress updates stopped: {error})', file=sys.stderr)


class TerminalBar:
    """The CLI's view: a rich progress bar on a terminal, else a plain line
    every `plain_every` seconds (logs and pipes get no control codes)."""

    def __init__(self, stream=None, plain_every: float = 10.0):
        self._stream = stream or sys.stderr
        self._plain_every = plain_every
        self._last_plain = time.monotonic()
        self._bar = None
        self._tasks: dict = {}

    def __call__(self, progress: dict) -> None:
        if not self._stream.isatty():
            if time.monotonic() - self._last_plain >= self._plain_every:
                self._last_plain = time.monotonic()
                print(f'progress: read {describe(progress)}', file=self._stream,
                      flush=True)
            return
        if self._bar is None:
            from rich.console import Console
            from rich.progress import Progress
            self._bar = Progress(console=Console(file=self._stream), transient=True)
            self._bar.start()
        for kind, read in progress['read'].items():
            if kind not in self._tasks:
                self._tasks[kind] = self._bar.add_task(
                    f'read {kind}', total=progress['total'].get(kind))
            self._bar.update(self._tasks[kind], completed=read)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
