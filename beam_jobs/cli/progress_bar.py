"""The CLI's view of a running job's progress (progress.py's reports)."""

from __future__ import annotations

import sys
import time
from typing import Any

from beam_jobs import progress


class TerminalBar:
    """The CLI's view: a rich progress bar on a terminal, else a plain line
    every `plain_every` seconds (logs and pipes get no control codes)."""

    def __init__(self, stream=None, plain_every: float = 10.0):
        self._stream = stream or sys.stderr
        self._plain_every = plain_every
        self._last_plain = time.monotonic()
        self._bar: Any = None   # rich's Progress, made on the first report
        self._tasks: dict = {}

    def __call__(self, report: dict) -> None:
        if not self._stream.isatty():
            if time.monotonic() - self._last_plain >= self._plain_every:
                self._last_plain = time.monotonic()
                print(f'progress: read {progress.describe(report)}', file=self._stream,
                      flush=True)
            return
        if self._bar is None:
            from rich.console import Console
            from rich.progress import Progress
            self._bar = Progress(console=Console(file=self._stream), transient=True)
            self._bar.start()
        for kind, read in report['read'].items():
            if kind not in self._tasks:
                self._tasks[kind] = self._bar.add_task(
                    f'read {kind}', total=report['total'].get(kind))
            self._bar.update(self._tasks[kind], completed=read)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
