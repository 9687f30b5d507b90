"""What a run leaves on the machine that ran it: its log, and an unrecorded end.

Beam logs a lot, and a failed run's traceback used to bury the one line that
said what failed. A run's log records (Beam's and ours, tracebacks included)
go to `.beam-jobs/logs/RUN_ID.log`, whose path the CLI prints; stderr keeps
only what a coordinator needs, unless they ask for more (`--verbose`).

When the Datastore that holds a run's record is lost, the run cannot record
how it ended. It writes the end here instead (`RUN_ID.end.json`), and the
next reader that finds the run's process gone records that end, with its real
reason, instead of a generic "orphaned" one (see `runs.RunStore.get`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import pathlib
import sys
import traceback
from typing import Any, Iterator, Optional

from beam_jobs import emulator

_FORMAT = '%(asctime)s %(levelname)s %(name)s: %(message)s'
# Whether the block `capture` runs asked for tracebacks on stderr too.
_shown = {'verbose': False}


def logs_dir() -> pathlib.Path:
    return emulator.home_dir() / 'logs'


def log_path(run_id: str) -> pathlib.Path:
    return logs_dir() / f'{run_id}.log'


@contextlib.contextmanager
def capture(run_id: str, verbose: bool = False) -> Iterator[pathlib.Path]:
    """Send every log record to the run's log file while the block runs.

    The root logger's handlers are replaced for the block (Beam adds a
    stderr handler with `logging.basicConfig()` whenever options or a
    pipeline are built), so without `verbose` nothing reaches stderr through
    logging; with it, warnings and worse are shown there as well.
    """
    path = log_path(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    handlers: list[logging.Handler] = [logging.FileHandler(path, encoding='utf-8')]
    handlers[0].setFormatter(logging.Formatter(_FORMAT))
    if verbose:
        handlers.append(logging.StreamHandler(sys.stderr))
        handlers[-1].setLevel(logging.WARNING)
    saved_level, saved_handlers = root.level, root.handlers[:]
    root.setLevel(min(saved_level or logging.WARNING, logging.INFO))
    root.handlers = handlers
    _shown['verbose'] = verbose
    try:
        yield path
    finally:
        _shown['verbose'] = False
        root.handlers = saved_handlers
        root.setLevel(saved_level)
        for handler in handlers:
            handler.close()


def write_traceback(run_id: str, error: BaseException) -> None:
    """Append a failure's whole traceback to the run's log (and, verbose,
    to stderr)."""
    path = log_path(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ''.join(traceback.format_exception(error))
    with open(path, 'a', encoding='utf-8') as log:
        log.write(f'\nThe run failed:\n{text}')
    if _shown['verbose']:
        print(text, file=sys.stderr)


def save_end(run_id: str, status: str, fields: dict[str, Any]) -> pathlib.Path:
    """Keep an end the Datastore could not take, for the next reader to record."""
    path = logs_dir() / f'{run_id}.end.json'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({'status': status, 'fields': fields}))
    return path


def take_end(run_id: str) -> Optional[tuple[str, dict[str, Any]]]:
    """The end a run saved here, if any; the caller records it, then `drop_end`."""
    path = logs_dir() / f'{run_id}.end.json'
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data['status'], data['fields']


def drop_end(run_id: str) -> None:
    (logs_dir() / f'{run_id}.end.json').unlink(missing_ok=True)
