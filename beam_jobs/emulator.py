"""The local Datastore: find, start and stop the Cloud Datastore emulator.

The emulator ships with the Google Cloud CLI. Its launcher script runs Java as
a child process, so every emulator we start gets its own process group and is
stopped by signalling the whole group: killing the script alone would leave
Java running with the port taken.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Optional

EMULATOR_HOST_ENV = 'DATASTORE_EMULATOR_HOST'
PROJECT_ENV = 'DATASTORE_PROJECT_ID'
HOME_ENV = 'BEAM_JOBS_HOME'
DEFAULT_PROJECT = 'beam-jobs-local'
START_TIMEOUT_SECS = 60.0
_LAUNCHER_RELATIVE = pathlib.Path(
    'platform', 'cloud-datastore-emulator', 'cloud_datastore_emulator')
_STATE_FILE = 'emulator.json'


class EmulatorError(RuntimeError):
    """The local Datastore could not be found, started or reached."""


@dataclasses.dataclass
class Emulator:
    """A running emulator: where it listens and, if we started it, its group."""

    host: str
    project: str
    process_group: Optional[int] = None
    data_dir: Optional[str] = None
    log_file: Optional[str] = None

    def env(self) -> dict[str, str]:
        """The variables the Datastore clients read to talk to this emulator."""
        return {EMULATOR_HOST_ENV: self.host, PROJECT_ENV: self.project}

    def is_alive(self) -> bool:
        return is_serving(self.host)

    def stop(self) -> None:
        """Stop the launcher script and its Java child, waiting for the port."""
        if self.process_group is None:
            return
        _signal_group(self.process_group, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _group_exists(self.process_group):
            time.sleep(0.1)
        if _group_exists(self.process_group):
            _signal_group(self.process_group, signal.SIGKILL)
        self.process_group = None


def home_dir() -> pathlib.Path:
    """The project-local folder that holds emulator data and state."""
    return pathlib.Path(os.environ.get(HOME_ENV, '.beam-jobs')).resolve()


def find_launcher() -> pathlib.Path:
    """Locate the SDK's `cloud_datastore_emulator` script, or say what to install."""
    candidates = []
    if os.environ.get('CLOUDSDK_ROOT_DIR'):
        candidates.append(pathlib.Path(os.environ['CLOUDSDK_ROOT_DIR']))
    gcloud = shutil.which('gcloud')
    if gcloud:
        candidates.append(pathlib.Path(os.path.realpath(gcloud)).parent.parent)
    candidates += [pathlib.Path('/usr/lib/google-cloud-sdk'),
                   pathlib.Path.home() / 'google-cloud-sdk']
    for sdk_root in candidates:
        launcher = sdk_root / _LAUNCHER_RELATIVE
        if launcher.exists():
            return launcher
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


def is_serving(host: str) -> bool:
    """The emulator answers `GET /` with `Ok` once it is ready."""
    try:
        with urllib.request.urlopen(f'http://{host}/', timeout=2) as response:
            return response.read().strip() == b'Ok'
    except (urllib.error.URLError, OSError):
        return False


def start(data_dir: Optional[os.PathLike] = None, port: Optional[int] = None,
          project: str = DEFAULT_PROJECT) -> Emulator:
    """Start an emulator in its own process group and wait until it serves.

    With `data_dir` the data is kept on disk there (and survives a restart);
    without it the data lives in memory only, as tests want.
    """
    launcher = find_launcher()
    _check_java()
    port = port or free_port()
    host = f'localhost:{port}'
    if is_serving(host):
        raise EmulatorError(
            f'Port {port} already has an emulator on it: stop it or pick '
            'another port.')
    if data_dir is None:
        work_dir = home_dir() / 'scratch'
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
                        log_file=str(log_path))
    deadline = time.monotonic() + START_TIMEOUT_SECS
    while not is_serving(host):
        if process.poll() is not None or time.monotonic() > deadline:
            emulator.stop()
            tail = log_path.read_text(errors='replace')[-2000:]
            raise EmulatorError(
                f'The Datastore emulator did not start on {host} (log: '
                f'{log_path}):\n{tail}')
        time.sleep(0.1)
    return emulator


def _signal_group(group: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)


def _group_exists(group: int) -> bool:
    # The launcher may be our own child: reap it, or its zombie keeps the
    # group looking alive after it exited.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(group, os.WNOHANG)
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


# A long-lived emulator, managed by `beam-jobs emulator start|stop|status`.

def _state_path() -> pathlib.Path:
    return home_dir() / _STATE_FILE


def read_managed() -> Optional[Emulator]:
    """The long-lived emulator recorded in the project folder, if it still runs."""
    path = _state_path()
    if not path.exists():
        return None
    emulator = Emulator(**json.loads(path.read_text()))
    if emulator.is_alive():
        return emulator
    return None


def start_managed(port: Optional[int] = None) -> Emulator:
    """Start (or find) the project's long-lived emulator, data kept on disk."""
    running = read_managed()
    if running:
        return running
    emulator = start(data_dir=home_dir() / 'datastore', port=port,
                     project=os.environ.get(PROJECT_ENV, DEFAULT_PROJECT))
    _state_path().write_text(json.dumps(dataclasses.asdict(emulator)))
    return emulator


def stop_managed() -> Optional[Emulator]:
    """Stop the long-lived emulator; returns it, or None if none was running."""
    path = _state_path()
    if not path.exists():
        return None
    emulator = Emulator(**json.loads(path.read_text()))
    emulator.stop()
    path.unlink()
    return emulator


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def ensure_environment(announce=_to_stderr) -> None:
    """Point this process at a Datastore, starting an emulator if none is set.

    For code that has no `with` block to hold (the legacy `Job.*` calls): an
    emulator started here lives until the process exits.
    """
    if os.environ.get(EMULATOR_HOST_ENV) or os.environ.get(
            'BEAM_JOBS_REAL_DATASTORE'):
        return
    running = read_managed()
    if running is None:
        running = start(data_dir=home_dir() / 'datastore',
                        project=os.environ.get(PROJECT_ENV, DEFAULT_PROJECT))
        atexit.register(running.stop)
        announce(f'Started a Datastore emulator on {running.host} (data in '
                 f'{running.data_dir}); it stops when this process ends. '
                 'Run `beam-jobs emulator start` to keep one running.')
    os.environ.update(running.env())
