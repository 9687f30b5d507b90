"""What a running job reports, shared by the CLI and the console.

A long local run used to show nothing until it ended. Now the map step
counts the entities it has read, per kind, in a process-wide tally (the
default local runner runs it in this process), and a `Reporter` thread hands
that tally every couple of seconds to its listeners: the run record (which
the console shows) and the CLI's bar (cli/progress_bar.py). The total comes from the source when it
knows it: an export's metadata exactly, the Datastore's kind statistics where
they exist (the emulator keeps none). When the map step runs in local worker
processes (a large export run, options.py), each worker publishes its own
tally to a file in a folder the reporter names through the environment the
workers inherit, and the reporter adds those files up. A Dataflow run
reports no live progress.

A record's `progress` is `{'read': {kind: n}, 'total': {kind: n or None},
'updated_msec': int}`.
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import shutil
import sys
import threading
import time
from typing import Callable, Mapping, Optional, Sequence

_read: collections.Counter = collections.Counter()

# "OWNER_PID:FOLDER", set while a run reports: a process other than the
# owner (a local worker) writes its tally to FOLDER/PID.json.
SHARED_ENV = 'BEAM_JOBS_PROGRESS_SHARED'
# How often a worker rewrites its file (and always at a bundle's end).
PUBLISH_EVERY_SECS = 1.0
_published = {'at': 0.0}

Listener = Callable[[dict], None]
# How often a run reports (the `progress_interval` setting; 0 turns it off).
DEFAULT_INTERVAL_SECS = 2.0


def count(kind: str) -> None:
    """One entity of `kind` reached the map step (called per element)."""
    _read[kind] += 1


def publish(force: bool = False) -> None:
    """In a worker process of a reporting run: write this process's tally
    where the reporter reads it, at most every PUBLISH_EVERY_SECS unless
    `force` (a bundle's end, so the last counts are exact). Elsewhere a no-op."""
    shared = os.environ.get(SHARED_ENV)
    if not shared or not _read:
        return
    owner, _, folder = shared.partition(':')
    if owner == str(os.getpid()):
        return    # the reporter's own process: it reads _read directly
    now = time.monotonic()
    if not force and now - _published['at'] < PUBLISH_EVERY_SECS:
        return
    _published['at'] = now
    path = pathlib.Path(folder) / f'{os.getpid()}.json'
    temporary = path.with_suffix('.tmp')
    try:
        temporary.write_text(json.dumps(dict(_read)))
        os.replace(temporary, path)   # a reader never sees half a file
    except OSError:
        pass   # progress must never stop a run (the folder went: it ended)


def _workers_read(folder: Optional[pathlib.Path]) -> collections.Counter:
    total: collections.Counter = collections.Counter()
    if folder is None:
        return total
    for path in folder.glob('*.json'):
        try:
            total.update(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue   # replaced meanwhile: the next report has it
    return total


def snapshot(totals: Mapping[str, Optional[int]],
             shared_folder: Optional[pathlib.Path] = None) -> dict:
    counted = _workers_read(shared_folder)
    counted.update(_read)
    read = {kind: counted.get(kind, 0) for kind in totals}
    read.update((kind, n) for kind, n in counted.items() if kind not in read)
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
    progress must never stop a run.

    `shared_folder`: where local worker processes publish their tallies (a
    fresh folder, removed at the end); None when the map step runs here."""

    def __init__(self, totals: Mapping[str, Optional[int]],
                 listeners: Sequence[Listener],
                 interval: float = DEFAULT_INTERVAL_SECS,
                 shared_folder: Optional[pathlib.Path] = None):
        self._totals = dict(totals)
        self._listeners = list(listeners)
        self._interval = interval
        self._shared = shared_folder if self._listeners else None
        self._saved_env: Optional[str] = None
        self._final: dict = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name='progress-reporter')

    def __enter__(self) -> 'Reporter':
        _read.clear()
        if self._shared is not None:
            self._shared.mkdir(parents=True, exist_ok=True)
            self._saved_env = os.environ.get(SHARED_ENV)
            os.environ[SHARED_ENV] = f'{os.getpid()}:{self._shared}'
        if self._listeners:
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        if self._listeners:
            self._final = snapshot(self._totals, self._shared)
        if self._shared is not None:
            if self._saved_env is None:
                os.environ.pop(SHARED_ENV, None)
            else:
                os.environ[SHARED_ENV] = self._saved_env
            shutil.rmtree(self._shared, ignore_errors=True)

    def final(self) -> dict:
        """How far the run got when it ended (kept with its end, not sent)."""
        return self._final

    def _loop(self) -> None:
        # No last report when the run ends: its record then gets the final
        # counts anyway, and a report there would only delay the end.
        while not self._done.wait(self._interval):
            self._tell()

    def _tell(self) -> None:
        progress = snapshot(self._totals, self._shared)
        for listener in list(self._listeners):
            try:
                listener(progress)
            except Exception as error:  # pylint: disable=broad-except
                self._listeners.remove(listener)
                print(f'(progress updates stopped: {error})', file=sys.stderr)
