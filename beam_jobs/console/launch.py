"""Starting a run from the console: checked here, run in a process of its own.

A run started from a page must not run inside the server: a long run would
hold a worker, and a restart of the server would kill it. So the console
checks the request as `beam-jobs run` would (the registry, the params, the
shard count, the export, `planning.plan_run`), creates the run's record so
it can answer with the run id at once, and starts

    python -m beam_jobs.cli.detached_run [--registry R] [--namespace N] \
        run JOB --run-id ID [--param=K=JSON]... [--shard-count=N] [--dry-run] [--export=PATH]

(`beam-jobs run`, as a user of the project's emulator: cli/detached_run.py) in a
session of its own, detached from the server. That process takes the record
from `new` onwards exactly as a run typed in a shell does, so cancel, orphan
detection and the run's log work the same. What it prints goes to
`RUN_ID.console.txt` beside the run's log.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
from typing import Any, Callable, Mapping, Optional

from beam_jobs import emulator
from beam_jobs import failures
from beam_jobs import refusals
from beam_jobs import registry as registry_lib
from beam_jobs.io import namespaces as namespaces_lib
from beam_jobs.lifecycle import launcher
from beam_jobs.lifecycle import planning
from beam_jobs.lifecycle import run_logs
from beam_jobs.records import runs

FIELDS = ('job', 'params', 'shard_count', 'dry_run', 'export', 'retry_failed',
          'namespaces')
# Not imported: the console starts it as a module of its own process.
RUN_MODULE = 'beam_jobs.cli.detached_run'


class BadStartRequest(refusals.Refused):
    """A start request that cannot run as given; the message says why."""


@dataclasses.dataclass(frozen=True)
class StartRequest:
    """A start request that passed every check `beam-jobs run` makes first."""

    job: type
    params: dict
    shard_count: Optional[int]
    dry_run: bool
    export: Optional[str]
    plan: planning.RunPlan
    retry_failed: Optional[str] = None
    namespaces: Optional[str] = None

    @property
    def job_name(self) -> str:
        return self.job.__name__


def check(body: Any, registry: registry_lib.JobRegistry,
          namespace: Optional[str] = None,
          record_of: Optional[Callable[[str], runs.RunRecord]] = None) -> StartRequest:
    """Refuse what `beam-jobs run` would refuse, before any record exists
    (`record_of` finds the run a `retry_failed` request finishes)."""
    if not isinstance(body, Mapping):
        raise BadStartRequest('The request body must be a JSON object such as '
                              '{"job": "MyJob", "params": {}}.')
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise BadStartRequest(f'Unknown field(s) {", ".join(unknown)}: a run '
                              f'takes {", ".join(FIELDS)}.')
    name = body.get('job')
    if not isinstance(name, str) or not name:
        raise BadStartRequest('Name the job to run: "job" must be the name of a '
                              'registered job.')
    try:
        job = registry.get(name)
    except registry_lib.UnknownJobError as error:
        raise BadStartRequest(str(error)) from None
    params, dry_run = _params_and_dry_run(body)
    shard_count = body.get('shard_count')
    export = body.get('export') or None
    if export is not None:
        export = _check_export(export)
    retry_failed = body.get('retry_failed') or None
    if retry_failed is not None and (not isinstance(retry_failed, str) or record_of is None):
        raise BadStartRequest('"retry_failed" must be the id of the run to finish.')
    spaces = body.get('namespaces') or None
    if spaces is not None and not isinstance(spaces, str):
        raise BadStartRequest('"namespaces" must be text: "a,b,c" or "all".')
    plan_params = {**params, **({'dry_run': True} if dry_run else {})}
    try:
        retry_of = record_of(retry_failed) if retry_failed and record_of else None
        # The console's namespace holds its records; the run reads those named.
        plan = planning.plan_run(job, plan_params, shard_count, [], export=export,
                                 namespace=None if spaces else namespace,
                                 retry_of=retry_of,
                                 namespaces=namespaces_lib.parse(spaces))
    except (refusals.Refused, planning.NothingLeftError) as error:
        raise BadStartRequest(str(error)) from None
    return StartRequest(job, params, shard_count, dry_run, export, plan, retry_failed,
                        spaces)


def _params_and_dry_run(body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The request's params (each passable as --param NAME=VALUE) and
    whether it is a dry run, said once: as the --dry-run flag."""
    params = body.get('params')
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise BadStartRequest('"params" must be a JSON object of name to value, '
                              f'not {json.dumps(params)}.')
    params = dict(params)
    for key in params:
        if not key or '=' in key:
            raise BadStartRequest(f'Param name {key!r} cannot be passed as '
                                  '--param NAME=VALUE: use a non-empty name '
                                  'without "=".')
    dry_run = body.get('dry_run', False)
    if dry_run is None:
        dry_run = False
    if not isinstance(dry_run, bool):
        raise BadStartRequest('"dry_run" must be true or false.')
    if dry_run or params.get('dry_run') is True:
        # One spelling reaches the run: the --dry-run flag.
        dry_run = True
        params.pop('dry_run', None)
    return params, dry_run


def _check_export(path: Any) -> str:
    if not isinstance(path, str):
        raise BadStartRequest('"export" must be the path of a Datastore export '
                              '(its folder or its .overall_export_metadata).')
    path = path.strip()
    if '://' in path:
        from apache_beam.io.filesystems import FileSystems
        try:
            exists = FileSystems.exists(path)
        except Exception as error:  # pylint: disable=broad-except
            raise BadStartRequest(f'Could not check the export {path} '
                                  f'({failures.describe(error)}).') from None
    else:
        path = os.path.abspath(os.path.expanduser(path))
        exists = os.path.exists(path)
    if not exists:
        raise BadStartRequest(f'There is no export at {path}: give the folder '
                              'that `gcloud datastore export` wrote, or its '
                              '.overall_export_metadata file.')
    return path


def command(request: StartRequest, run_id: str,
            registry_module: Optional[str] = None,
            namespace: Optional[str] = None) -> list[str]:
    """The `beam-jobs run` that runs the request under the record `run_id`.

    Values travel as one `--flag=value` argument each, so none can be read as
    a flag of its own, and params as JSON, so each arrives with its type.
    """
    argv = [sys.executable, '-m', RUN_MODULE]
    if namespace and request.namespaces:
        # The record stays in the console's namespace; the run reads those named.
        argv.append(f'--records-namespace={namespace}')
    if registry_module:
        argv.append(f'--registry={registry_module}')
    if namespace and not request.namespaces:
        argv.append(f'--namespace={namespace}')
    argv += ['run', request.job_name, f'--run-id={run_id}']
    argv += [f'--param={key}={json.dumps(value)}'
             for key, value in request.params.items()]
    if request.shard_count is not None:
        argv.append(f'--shard-count={request.shard_count}')
    if request.dry_run:
        argv.append('--dry-run')
    if request.export:
        argv.append(f'--export={request.export}')
    if request.namespaces:
        argv.append(f'--namespaces={request.namespaces}')
    if request.retry_failed:
        argv.append(f'--retry-failed={request.retry_failed}')
    return argv


def revert_command(reverted_id: str, run_id: str, *, dry_run: bool, force: bool,
                   reason: Optional[str], user: Optional[str],
                   registry_module: Optional[str] = None,
                   namespace: Optional[str] = None) -> list[str]:
    """The `beam-jobs revert` that reverts `reverted_id` under the record
    `run_id` (values as one `--flag=value` argument each, as `command`)."""
    argv = [sys.executable, '-m', RUN_MODULE]
    if registry_module:
        argv.append(f'--registry={registry_module}')
    if namespace:
        argv.append(f'--namespace={namespace}')
    argv += ['revert', reverted_id, f'--run-id={run_id}']
    argv += ['--dry-run'] if dry_run else []
    argv += ['--force'] if force else []
    argv += [f'--reason={reason}'] if reason else []
    argv += [f'--user={user}'] if user else []
    return argv


def console_output_path(run_id: str):
    return run_logs.logs_dir() / f'{run_id}.console.txt'


def start(argv: list[str], store: runs.RunStore, run_id: str) -> subprocess.Popen:
    """Start the run's process detached, and watch for it dying before it
    took its record (bad flags, an import error): that ends the record
    `failed` with what the process printed, instead of leaving it `new`."""
    output_path = console_output_path(run_id)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    shared = emulator.attached()
    if shared is not None:
        # The server uses the project's emulator as one of its users; the
        # run becomes a user of its own (run_process.py), so the emulator
        # outlives the server for as long as the run needs it.
        for name in shared.env():
            env.pop(name, None)
    with open(output_path, 'ab') as out:
        proc = subprocess.Popen(  # pylint: disable=consider-using-with
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=env, start_new_session=True, close_fds=True)
    threading.Thread(target=_reap, args=(proc, store, run_id, output_path),
                     daemon=True, name=f'reap-{run_id}').start()
    return proc


def _reap(proc: subprocess.Popen, store: runs.RunStore, run_id: str,
          output_path) -> None:
    code = proc.wait()   # also keeps a finished run from lingering as a zombie
    try:
        if store.get(run_id).status != runs.NEW:
            return
        printed = output_path.read_text(encoding='utf-8', errors='replace')
        tail = ' '.join(printed.strip().splitlines()[-3:]) or 'it printed nothing'
        launcher.end_unstarted(store, run_id, (
            f'The run\'s process exited (code {code}) before it started the '
            f'run: {tail} (all it printed: {output_path}).'),
            log_file=str(output_path))
    except runs.UnknownRunError:
        pass
    except Exception:  # pylint: disable=broad-except
        # The Datastore is gone: the record stays `new`, as after a crash.
        pass
