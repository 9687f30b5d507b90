"""The project's local Datastore: one emulator per data folder, shared.

Two emulators on one data folder lose data: each writes the folder back when
it stops, so the last one to stop wins, and a run's record can vanish. So
every command that needs the embedded emulator *attaches* to the project's
one under a lock: the first starts it, the others use it, and it stops when
the last of them ends (unless `beam-jobs emulator start` asked to keep it).

Two files in the project folder (`.beam-jobs/`, or BEAM_JOBS_HOME) do this,
both with `flock`, which the kernel releases when a process dies, so a
crashed command never leaves a lock anyone waits on:

- `emulator.lock`, held exclusively for the moment it takes to start, attach
  to or stop the emulator;
- `emulator.users`, on which each attached command holds a shared lock for
  its whole life: the emulator has no users left exactly when an exclusive
  lock on it can be taken.

`emulator.json` says where the emulator listens and whether it is kept.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import fcntl
import json
import os
import pathlib
import sys
import time
from typing import Callable, Iterator, Optional

from beam_jobs import config
from beam_jobs import data_folder
from beam_jobs import target as target_lib
from beam_jobs.emulator_process import (  # noqa: F401  (the public face)
    DEFAULT_PROJECT, EMULATOR_HOST_ENV, PROJECT_ENV, Emulator, EmulatorError,
    free_port, is_serving, logged_reason, start)
from beam_jobs import emulator_process

HOME_ENV = 'BEAM_JOBS_HOME'
_STATE_FILE = 'emulator.json'
_LOCK_FILE = 'emulator.lock'
_USERS_FILE = 'emulator.users'
# Starting takes ~5 s; another command may be starting one meanwhile.
LOCK_TIMEOUT_SECS = emulator_process.START_TIMEOUT_SECS + 30

# The emulator this process attached to, with the open file that holds its
# shared lock on `emulator.users`.
_attached: dict = {}


def home_dir() -> pathlib.Path:
    """The project-local folder that holds emulator data and state."""
    return pathlib.Path(os.environ.get(HOME_ENV, '.beam-jobs')).resolve()


def data_dir() -> pathlib.Path:
    return home_dir() / 'datastore'


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


@contextlib.contextmanager
def _exclusive() -> Iterator[None]:
    """Hold `emulator.lock`: only one command starts or stops at a time."""
    home_dir().mkdir(parents=True, exist_ok=True)
    with open(home_dir() / _LOCK_FILE, 'a') as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT_SECS
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EmulatorError(
                        f'Another beam-jobs command has held '
                        f'{home_dir() / _LOCK_FILE} for over '
                        f'{LOCK_TIMEOUT_SECS:.0f} s while starting or stopping '
                        'the emulator: wait for it, or stop it, and try '
                        'again.') from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclasses.dataclass
class _State:
    emulator: Emulator
    kept: bool = False   # `beam-jobs emulator start`: outlives its users

    @classmethod
    def read(cls) -> Optional['_State']:
        path = home_dir() / _STATE_FILE
        try:
            data = json.loads(path.read_text())
            kept = data.pop('kept', False)
            return cls(Emulator(**data), kept)
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def write(self) -> None:
        data = dataclasses.asdict(self.emulator)
        data['kept'] = self.kept
        (home_dir() / _STATE_FILE).write_text(json.dumps(data))

    @staticmethod
    def clear() -> None:
        (home_dir() / _STATE_FILE).unlink(missing_ok=True)


def _has_users() -> bool:
    with open(home_dir() / _USERS_FILE, 'a') as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


EMULATOR_SETTING = 'emulator'


def wants_firestore() -> bool:
    """Whether the project's emulator is the Firestore emulator in Datastore
    mode: the `emulator = "firestore"` setting, or a named database in use
    (target.run_database), which only that emulator keeps apart."""
    return (str(config.get(EMULATOR_SETTING) or '').lower() == 'firestore'
            or target_lib.run_database() is not None)


def _running_or_start(kept: bool, port: Optional[int],
                      announce: Callable[[str], None],
                      firestore: bool = False) -> tuple[_State, bool]:
    """The folder's emulator, started if none runs (with `firestore`, the
    Firestore emulator in Datastore mode). Call under `_exclusive`."""
    folder = data_dir()
    repaired = data_folder.repair_index(folder)
    if repaired:
        announce(repaired)
    state = _State.read()
    if state and state.emulator.is_alive():
        return state, False
    if state and state.emulator.process_group:
        # Recorded but not answering: make sure it is gone before another
        # emulator opens the same folder.
        emulator_process.stop_group(state.emulator.process_group)
    _State.clear()
    data_folder.prune_logs(folder)
    project = os.environ.get(PROJECT_ENV, DEFAULT_PROJECT)
    if firestore or wants_firestore():
        running = emulator_process.start_firestore(port=port, project=project)
    else:
        running = start(data_dir=folder, port=port, project=project)
    state = _State(running, kept)
    state.write()
    return state, True


def attach(announce: Callable[[str], None] = _to_stderr) -> Emulator:
    """Use the project's emulator until this process ends, starting it if needed."""
    if 'emulator' in _attached:
        return _attached['emulator']
    with _exclusive():
        state, started = _running_or_start(False, None, announce)
        users = open(home_dir() / _USERS_FILE, 'a')  # pylint: disable=consider-using-with
        fcntl.flock(users, fcntl.LOCK_SH)
    _attached.update(emulator=state.emulator, users=users)
    atexit.register(detach)
    if started:
        announce(f'Started {started_text(state.emulator)}; it stops when the last '
                 'command using it ends. Run `beam-jobs emulator start` to keep one '
                 'running.')
    return state.emulator


def started_text(running: Emulator) -> str:
    """`a Datastore emulator on HOST (data in FOLDER)`, as announcements say it."""
    if running.firestore:
        return (f'the Firestore emulator in Datastore mode on {running.host} (named '
                'databases; data in memory only, lost when it stops)')
    return f'a Datastore emulator on {running.host} (data in {running.data_dir})'


def detach() -> None:
    """Stop using the emulator; the last user out stops it unless it is kept."""
    users = _attached.pop('users', None)
    _attached.pop('emulator', None)
    if users is None:
        return
    with _exclusive():
        fcntl.flock(users, fcntl.LOCK_UN)
        users.close()
        state = _State.read()
        if state and not state.kept and not _has_users():
            state.emulator.stop()
            _State.clear()


def attached() -> Optional[Emulator]:
    """The emulator this process uses, if it is the project's own."""
    return _attached.get('emulator')


def ensure_environment(announce: Callable[[str], None] = _to_stderr) -> None:
    """Point this process at a Datastore, attaching to the project's emulator
    if none is set (DATASTORE_EMULATOR_HOST, or BEAM_JOBS_REAL_DATASTORE)."""
    if os.environ.get(EMULATOR_HOST_ENV) or os.environ.get('BEAM_JOBS_REAL_DATASTORE'):
        return
    os.environ.update(attach(announce).env())


# `beam-jobs emulator start|stop|status|reset`

def start_managed(port: Optional[int] = None,
                  announce: Callable[[str], None] = _to_stderr,
                  firestore: bool = False) -> Emulator:
    """Start (or keep) the project's emulator until `emulator stop`
    (`firestore`: the Firestore emulator in Datastore mode)."""
    with _exclusive():
        state, _ = _running_or_start(True, port, announce, firestore)
        if firestore and not state.emulator.firestore:
            raise EmulatorError(
                f'The project\'s Datastore emulator already runs on '
                f'{state.emulator.host}: stop it (`beam-jobs emulator stop`), then '
                'start the Firestore one.')
        if not state.kept:
            state.kept = True
            state.write()
    return state.emulator


def read_managed() -> Optional[Emulator]:
    """The project's emulator, if one runs (kept or in use by a command)."""
    state = _State.read()
    return state.emulator if state and state.emulator.is_alive() else None


def stop_managed() -> tuple[Optional[Emulator], bool]:
    """Stop the project's emulator, or, while commands still use it, let the
    last of them stop it. Returns it (None if none ran) and whether it stopped."""
    with _exclusive():
        state = _State.read()
        if state is None:
            return None, False
        if _has_users():
            state.kept = False
            state.write()
            return state.emulator, False
        state.emulator.stop()
        _State.clear()
        return state.emulator, True


def reset() -> tuple[Optional[pathlib.Path], Optional[Emulator]]:
    """Move the data folder aside (never delete it) and start clean.

    Refused while a command uses the emulator. A kept emulator is started
    again on the clean folder; otherwise the next command starts one.
    Returns where the old data went and the restarted emulator, if any.
    """
    with _exclusive():
        if _has_users():
            raise EmulatorError(
                'beam-jobs commands are using the emulator right now: let them '
                'finish (or cancel them), then run `beam-jobs emulator reset` '
                'again.')
        state = _State.read()
        if state:
            state.emulator.stop()
            _State.clear()
        moved = data_folder.move_aside(data_dir())
        restarted = None
        if state and state.kept:
            started, _ = _running_or_start(True, None, _to_stderr)
            restarted = started.emulator
    return moved, restarted


def health() -> list[str]:
    """What is wrong with the project's data folder (empty when healthy)."""
    return data_folder.problems(data_dir())


def explain(error: BaseException) -> Optional[str]:
    """For a server-side Datastore error from the project's emulator (a bare
    `Unknown` or `Internal`, or retries of one running out), one sentence
    naming the folder, the emulator's own reason from its log, and the log."""
    if not _is_server_failure(error):
        return None
    running = attached() or read_managed()
    if running is None or not running.log_file:
        return None
    # The emulator may answer before it has written its log: give it a moment.
    deadline = time.monotonic() + 2.0
    reason = logged_reason(running.log_file)
    while not reason and time.monotonic() < deadline:
        time.sleep(0.1)
        reason = logged_reason(running.log_file)
    if not reason:
        return None
    return (f'The Datastore emulator on {running.host} (data in '
            f'{running.data_dir}) failed: {reason} (log: {running.log_file}); '
            'if the data folder is damaged, `beam-jobs emulator reset` moves it '
            'aside and starts clean.')


def _is_server_failure(error: Optional[BaseException]) -> bool:
    from google.api_core import exceptions as api_exceptions
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (api_exceptions.Unknown, api_exceptions.InternalServerError,
                              api_exceptions.RetryError)):
            return True
        error = error.__cause__ or error.__context__
    return False
