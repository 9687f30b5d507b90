"""`beam-jobs emulator start | stop | status | reset | import`, and `beam-jobs
export`: the local Datastore and the managed exports it reads and writes."""

from __future__ import annotations

import os
from typing import Union

from beam_jobs import target as target_lib
from beam_jobs import emulator
from beam_jobs import export as export_lib
from beam_jobs.cli import common
from beam_jobs.io import namespaces as namespaces_lib

# The framework's own kinds (records of runs, rehearsals and the like) all
# start with this: they are not data a job maps over.
FRAMEWORK_KIND_PREFIX = 'BeamJob'


def add_parsers(commands, parent) -> None:
    emu = commands.add_parser(
        'emulator', parents=[parent], help='the local Datastore emulator',
        description='start: keep the project\'s emulator running until '
        '`stop`; stop: stop it (or, while commands use it, let the last of '
        'them stop it); status: where it runs and whether its data folder is '
        'healthy; reset: move a damaged data folder aside (never deleting it) '
        'and start clean.')
    emu.add_argument('action', choices=['start', 'stop', 'status', 'reset', 'import'])
    emu.add_argument('path', nargs='?', default=None,
                     help='import: the export to load (its '
                     '.overall_export_metadata, or the folder holding it)')
    emu.add_argument('--port', type=int, default=None)
    emu.add_argument('--firestore', action='store_true',
                     help='start: the Firestore emulator in Datastore mode, which '
                     'keeps named databases (--database) apart; in memory only '
                     '(default with the `emulator = "firestore"` setting, or when '
                     'a database is named)')
    emu.set_defaults(handler=cmd_emulator)

    export = commands.add_parser(
        'export', parents=[parent],
        help='export the local emulator\'s data as a managed export',
        description='Ask the local emulator for a Datastore managed export '
        'into DEST (a folder that must not exist yet) and print the path of '
        'its .overall_export_metadata, which `beam-jobs run JOB --export` '
        'reads. Without --kinds, every kind but beam-jobs\' own run records.')
    export.add_argument('dest')
    export.add_argument('--kinds', nargs='+', metavar='KIND', default=None)
    export.add_argument('--namespaces', default=None, metavar='A,B,C|all',
                        help='export each of these namespaces (`(default)` the '
                        'default one), or every one (`all`), into one export; '
                        'default: the --namespace one')
    export.set_defaults(handler=cmd_export)


def cmd_emulator(args) -> int:
    if (args.action == 'import') != (args.path is not None):
        raise common.UsageError('`beam-jobs emulator import PATH` takes the '
                                'export to load; the other actions take no path.')
    return {'start': _start, 'stop': _stop, 'status': _status,
            'reset': _reset, 'import': _import}[args.action](args)


def _local_target(args) -> target_lib.Target:
    emulator.ensure_environment()
    if not os.environ.get(emulator.EMULATOR_HOST_ENV):
        raise common.UsageError('Exports and imports work with the local emulator '
                                'only: for production, use `gcloud datastore '
                                'export` / `import` (see the README).')
    return target_lib.Target.from_environment(namespace=args.namespace)


def _import(args) -> int:
    target = _local_target(args)
    info = export_lib.read_export_info(args.path)
    export_lib.import_into_emulator(os.environ[emulator.EMULATOR_HOST_ENV],
                                    target.project, info.metadata_path)
    total = sum(entity_set.num_entities for entity_set in info.entity_sets)
    print(f'Imported {total} entities from {info.metadata_path} into the '
          f'emulator (project {target.project}).')
    return common.EXIT_OK


def cmd_export(args) -> int:
    target = _local_target(args)
    kinds = args.kinds or _data_kinds(target)
    if not kinds:
        raise common.UsageError('The emulator holds no data to export (only '
                                'beam-jobs\' run records): load some first.')
    namespace: Union[None, str, list[str]] = target.namespace or ''
    if args.namespaces:
        if args.namespace:
            raise common.UsageError('--namespaces exports several namespaces and '
                                    '--namespace one: pass one of them.')
        namespace = namespaces_lib.parse(args.namespaces)
        namespace = None if namespace == [namespaces_lib.ALL] else namespace
    path = export_lib.export_from_emulator(
        os.environ[emulator.EMULATOR_HOST_ENV], target.project, args.dest,
        kinds=kinds, namespace=namespace)
    info = export_lib.read_export_info(path)
    counts = ', '.join(f'{s.kind} {s.num_entities}' for s in info.entity_sets)
    print(f'Exported {counts or "nothing"}.')
    print(path)
    return common.EXIT_OK


def _data_kinds(target: target_lib.Target) -> list[str]:
    client = target_lib.client(target)
    query = client.query(kind='__kind__')
    query.keys_only()
    return sorted(entity.key.name for entity in query.fetch()
                  if not entity.key.name.startswith('__')
                  and not entity.key.name.startswith(FRAMEWORK_KIND_PREFIX))


def _start(args) -> int:
    running = emulator.start_managed(args.port, firestore=args.firestore)
    print(f'Emulator running on {running.host} ({_holding(running)}).')
    print(f'export DATASTORE_EMULATOR_HOST={running.host} '
          f'DATASTORE_PROJECT_ID={running.project}')
    return common.EXIT_OK


def _holding(running) -> str:
    if running.firestore:
        return ('the Firestore emulator in Datastore mode: named databases, data '
                'in memory only')
    return f'data in {running.data_dir}'


def _stop(args) -> int:
    stopped, now = emulator.stop_managed()
    if stopped is None:
        print('No emulator was running.')
    elif now:
        print(f'Stopped the emulator on {stopped.host}.')
    else:
        print(f'The emulator on {stopped.host} is in use by running beam-jobs '
              'commands: it stops when the last of them ends.')
    return common.EXIT_OK


def _status(args) -> int:
    running = emulator.read_managed()
    print(f'Running on {running.host} ({_holding(running)}).' if running else 'Not running.')
    problems = emulator.health()
    if not problems:
        print(f'Data folder {emulator.data_dir()}: healthy.')
        return common.EXIT_OK
    print(f'Data folder {emulator.data_dir()}: DAMAGED.')
    for problem in problems:
        print(f'  - {problem}')
    print('  `beam-jobs emulator reset` moves the folder aside (nothing is '
          'deleted) and starts clean.')
    return common.EXIT_FAILED


def _reset(args) -> int:
    moved, restarted = emulator.reset()
    if moved is None:
        print(f'Nothing to move: {emulator.data_dir()} does not exist yet.')
    else:
        print(f'Moved the data folder aside to {moved} (nothing was deleted).')
    if restarted:
        print(f'Emulator running again on {restarted.host} with a clean folder.')
    else:
        print('The next beam-jobs command starts the emulator on a clean folder.')
    return common.EXIT_OK
