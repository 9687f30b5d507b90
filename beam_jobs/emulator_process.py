"""One Cloud Datastore emulator process: find it, start it, stop it, read its log.

The emulator ships with the Google Cloud CLI. Its launcher script runs Java as
a child process, so every emulator we start gets its own process group and is
stopped by signalling the whole group: killing the script alone would leave
Java running with the port taken.

Which emulator a command uses, and sharing it between commands, is
`emulator.py`'s business; this module only runs one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import Optional

from beam_jobs import refusals

EMULATOR_HOST_ENV = 'DATASTORE_EMULATOR_HOST'
PROJECT_ENV = 'DATASTORE_PROJECT_ID'
DEFAULT_PROJECT = 'beam-jobs-local'
START_TIMEOUT_SECS = 60.0
_LAUNCHER_RELATIVE = pathlib.Path(
    'platform', 'cloud-datastore-emulator', 'cloud_datastore_emulator')
# The Firestore emulator, run in Datastore mode: the local emulator that keeps
# named databases apart (the Datastore emulator ignores database ids in
# queries). It keeps data in memory only and serves no `__kind__` or
# `__namespace__` queries and no `__scatter__` keys (so a read is one range a
# kind there).
_FIRESTORE_LAUNCHER_RELATIVE = pathlib.Path(
    'platform', 'cloud-firestore-emulator', 'cloud_firestore_emulator')
# What the emulator logs when it cannot read its data folder's store. It then
# goes on with an EMPTY store and writes that back over the file when data
# changes, so a start that logs this must never be used.
LOAD_FAILURE = 'Failed to load from the backing store'
# An exception the emulator logged: `com.x.SomeException: message`.
_EXCEPTION_LINE = re.compile(r'^(?:Caused by: )?[\w.$]+(?:Exception|Error)\b.*$', re.M)


class EmulatorError(refusals.Refused, RuntimeError):
    """The local Datastore could not be found, started or reached."""


@dataclasses.dataclass
class Emulator:
    """A running emulator: where it listens and, if we started it, its group."""

    host: str
    project: str
    process_group: Optional[int] = None
    data_dir: Optional[str] = None
    log_file: Optional[str] = None
    # A temporary folder made for an in-memory emulator: removed on stop.
    scratch_dir: Optional[str] = None
    # The Firestore emulator in Datastore mode (named databases), not the
    # Datastore emulator.
    firestore: bool = False

    def env(self) -> dict[str, str]:
        """The variables the Datastore clients read to talk to this emulator."""
        return {EMULATOR_HOST_ENV: self.host, PROJECT_ENV: self.project}

    def is_alive(self) -> bool:
        return is_serving(self.host)

    def stop(self) -> None:
        """Stop the launcher script and its Java child, waiting for the port."""
        if self.process_group is None:
            return
        stop_group(self.process_group)
        self.process_group = None
        if self.scratch_dir:
            shutil.rmtree(self.scratch_dir, ignore_errors=True)


def find_launcher(relative: Optional[pathlib.Path] = None) -> pathlib.Path:
    """Locate the SDK's `cloud_datastore_emulator` script (or another of its
    emulators), or say what to install."""
    relative = relative or _LAUNCHER_RELATIVE
    candidates = []
    if os.environ.get('CLOUDSDK_ROOT_DIR'):
        candidates.append(pathlib.Path(os.environ['CLOUDSDK_ROOT_DIR']))
    gcloud = shutil.which('gcloud')
    if gcloud:
        candidates.append(pathlib.Path(os.path.realpath(gcloud)).parent.parent)
    candidates += [pathlib.Path('/usr/lib/google-cloud-sdk'),
                   pathlib.Path.home() / 'google-cloud-sdk']
    for sdk_root in candidates:
        launcher = sdk_root / relative
        if launcher.exists():
            return launcher
    if relative == _FIRESTORE_LAUNCHER_RELATIVE:
        raise EmulatorError(
            'The Cloud Firestore emulator (which serves named databases in Datastore '
            'mode) was not found: `gcloud components install cloud-firestore-emulator` '
            '(or the Debian package `google-cloud-cli-firestore-emulator`).')
    raise EmulatorError(
        'The Cloud Datastore emulator was not found: install the Google Cloud '
        'CLI and its emulator (`gcloud components install '
        'cloud-datastore-emulator`, or the Debian package '
        '`google-cloud-cli-datastore-emulator`), or set DATASTORE_EMULATOR_HOST '
        'to an emulator you run yourself.')


def _check_java() -> None:
    if not shutil.which('java'):
        raise EmulatorError(
            'Java was not found, and the Datastore emulator runs on it: install '
            'Java 17 or newer (for example `apt-get install '
            'openjdk-17-jre-headless`) and try again.')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('localhost', 0))
        return sock.getsockname()[1]


def is_serving(host: str, timeout: float = 2.0) -> bool:
    """The emulator answers `GET /` with `Ok` once it is ready."""
    try:
        with urllib.request.urlopen(f'http://{host}/', timeout=timeout) as response:
            return response.read().strip() == b'Ok'
    except (urllib.error.URLError, OSError):
        return False


def logged_reason(log_file: Optional[str]) -> Optional[str]:
    """The last exception the emulator logged, in its own words."""
    if not log_file:
        return None
    try:
        text = pathlib.Path(log_file).read_text(errors='replace')
    except OSError:
        return None
    if LOAD_FAILURE in text:
        after = text[text.index(LOAD_FAILURE):]
        found = _EXCEPTION_LINE.search(after)
        return f'{LOAD_FAILURE} ({found.group(0).strip() if found else "no reason given"})'
    # The first exception after the last SEVERE report names the failure;
    # its "Caused by:" lines only repeat it.
    severe = text.rfind('SEVERE:')
    found = _EXCEPTION_LINE.search(text, severe) if severe >= 0 else None
    if found is None:
        every = list(_EXCEPTION_LINE.finditer(text))
        found = every[-1] if every else None
    return found.group(0).strip() if found else None


def start(data_dir: Optional[os.PathLike] = None, port: Optional[int] = None,
          project: str = DEFAULT_PROJECT, firestore: bool = False) -> Emulator:
    """Start an emulator in its own process group and wait until it serves.

    `firestore`: the Firestore emulator in Datastore mode instead (named
    databases; in memory only: start_firestore).

    With `data_dir` the data is kept on disk there (and survives a restart);
    without it the data lives in memory only, as tests want (the emulator
    still needs a folder for its settings: a temporary one of its own, since
    emulators sharing one rewrite its index.yaml at once and can damage it).
    A `data_dir` whose store the emulator cannot load is refused: see
    LOAD_FAILURE.
    """
    launcher = find_launcher()
    _check_java()
    port = port or free_port()
    host = f'localhost:{port}'
    _check_port_free(host, port)
    scratch = None
    if data_dir is None:
        work_dir = scratch = pathlib.Path(tempfile.mkdtemp(prefix='beam-jobs-emulator-'))
        store_flags = ['--store_on_disk=false']
    else:
        work_dir = pathlib.Path(data_dir).resolve()
        store_flags = ['--store_on_disk=true']
    work_dir.mkdir(parents=True, exist_ok=True)
    if not (work_dir / 'WEB-INF').exists():
        subprocess.run([str(launcher), 'create', str(work_dir)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log_path = work_dir / f'emulator-{port}.log'
    with open(log_path, 'wb') as log:
        process = subprocess.Popen(
            [str(launcher), 'start', '--host=localhost', f'--port={port}',
             '--consistency=1.0', *store_flags, str(work_dir)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    emulator = Emulator(host=host, project=project,
                        process_group=process.pid,
                        data_dir=str(work_dir) if data_dir else None,
                        log_file=str(log_path),
                        scratch_dir=str(scratch) if scratch else None)
    _wait_until_serving(emulator, process, log_path)
    if data_dir is not None and LOAD_FAILURE in log_path.read_text(errors='replace'):
        # Stopped before anything is written, so the damaged file stays
        # as it was for whoever wants to look at it.
        emulator.stop()
        raise EmulatorError(
            f'The Datastore emulator could not load the data in {work_dir}: '
            f'{logged_reason(str(log_path))} (log: {log_path}); run '
            '`beam-jobs emulator reset` to move that data aside and start '
            'clean, or restore the folder from a copy.')
    return emulator


def start_firestore(port: Optional[int] = None,
                    project: str = DEFAULT_PROJECT) -> Emulator:
    """Start the Firestore emulator in Datastore mode (memory only), in its
    own process group, and wait until it serves."""
    launcher = find_launcher(_FIRESTORE_LAUNCHER_RELATIVE)
    _check_java()
    port = port or free_port()
    host = f'localhost:{port}'
    _check_port_free(host, port)
    scratch = pathlib.Path(tempfile.mkdtemp(prefix='beam-jobs-firestore-'))
    log_path = scratch / f'emulator-{port}.log'
    with open(log_path, 'wb') as log:
        process = subprocess.Popen(
            [str(launcher), 'start', '--host=localhost', f'--port={port}',
             '--database-mode=datastore-mode'],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=scratch)
    emulator = Emulator(host=host, project=project, process_group=process.pid,
                        log_file=str(log_path), scratch_dir=str(scratch),
                        firestore=True)
    _wait_until_serving(emulator, process, log_path)
    return emulator


def _check_port_free(host: str, port: int) -> None:
    if is_serving(host):
        raise EmulatorError(
            f'Port {port} already has an emulator on it: stop it or pick '
            'another port.')


def _wait_until_serving(emulator: Emulator, process: subprocess.Popen,
                        log_path: pathlib.Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECS
    while not is_serving(emulator.host):
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log_path.read_text(errors='replace')[-2000:]
            emulator.stop()
            raise EmulatorError(
                f'The {"Firestore" if emulator.firestore else "Datastore"} emulator '
                f'did not start on {emulator.host} (log: {log_path}):\n{tail}')
        time.sleep(0.1)


def stop_group(group: int, grace_secs: float = 15.0) -> None:
    """SIGTERM the group, then SIGKILL whatever is left after `grace_secs`."""
    _signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + grace_secs
    while time.monotonic() < deadline and group_exists(group):
        time.sleep(0.1)
    if group_exists(group):
        _signal_group(group, signal.SIGKILL)


def _signal_group(group: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)


def group_exists(group: int) -> bool:
    # The launcher may be our own child: reap it, or its zombie keeps the
    # group looking alive after it exited.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(group, os.WNOHANG)
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
