"""`make bench`: reading several namespaces in one run against reading one.

    python -m bench.namespaces --entities 100000 [--parts 4] [--rounds 3]

Starts its own in-memory emulator and writes the sample explorations twice:
`--entities` of them in one namespace, and the same number split over
`--parts` namespaces (one export per namespace, then merged into one export
of them all). Both are imported into the emulator. Each round runs the
interaction audit (a read-only job) through the CLI, each run a process of its
own: over the one namespace (`--namespace`) and over the parts in one run
(`--namespaces`), on the emulator and on the exports. Prints medians and the
ratio the target is stated in: several namespaces / one (target <= 1.15x).
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import sys
import time
from typing import Optional, Sequence

from bench import measure

PROJECT = 'beam-jobs-local'
JOB = 'InteractionAuditOneOffJob'
ONE = 'bench-ns-one'


def _cli(*argv: str) -> list[str]:
    return [sys.executable, '-m', 'beam_jobs.cli', '--registry',
            'pipelines.jobs_registry', *argv]


def _merged(parts: list[str], dest: str) -> str:
    """One export holding the namespaces of several one-namespace exports
    (their set folders moved into it, the metadata written anew)."""
    from beam_jobs.export import metadata, writer
    export_dir, start = writer.new_export_dir(dest)
    sets = []
    for path in parts:
        info = metadata.read_export_info(path)
        for entity_set in info.entity_sets:
            folder = writer.set_folder(entity_set.kind, entity_set.namespace)
            target = os.path.join(export_dir, folder)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.move(entity_set.folder, target)
            files = sorted(name for name in os.listdir(target) if name.startswith('output-'))
            sets.append(writer.WrittenSet(entity_set.kind, entity_set.namespace, files=files,
                                          num_entities=entity_set.num_entities,
                                          num_bytes=entity_set.num_bytes))
    return writer.write_metadata(export_dir, sets, start,
                                 datetime.datetime.now(datetime.timezone.utc))


def _runs(one_export: str, parts_export: str, spaces: list[str]) -> dict:
    return {
        'emulator, one namespace': _cli('run', JOB, '--namespace', ONE),
        f'emulator, {len(spaces)} namespaces': _cli('run', JOB, '--namespaces', ','.join(spaces)),
        'export, one namespace': _cli('run', JOB, '--export', one_export, '--namespace', ONE),
        f'export, {len(spaces)} namespaces': _cli('run', JOB, '--export', parts_export,
                                                  '--namespaces', 'all'),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--entities', type=int, default=20000)
    parser.add_argument('--parts', type=int, default=4)
    parser.add_argument('--rounds', type=int, default=3)
    args = parser.parse_args(argv)
    from beam_jobs.export import import_into_emulator
    from pipelines import sample_data
    began = time.perf_counter()
    spaces = [f'bench-ns-part{number}' for number in range(args.parts)]
    with measure.own_emulator(PROJECT, 'bench-namespaces-') as (running, work):
        one = sample_data.export(args.entities, os.path.join(work, 'one'), PROJECT,
                                 namespace=ONE)
        parts = [sample_data.export(args.entities // args.parts, os.path.join(work, space),
                                    PROJECT, namespace=space) for space in spaces]
        for path in (one, *parts):
            import_into_emulator(running.host, PROJECT, path)
        merged = _merged(parts, os.path.join(work, 'parts'))
        env = dict(os.environ, **running.env(), BEAM_JOBS_HOME=os.path.join(work, 'home'),
                   PYTHONWARNINGS='ignore')
        env.pop('DATASTORE_NAMESPACE', None)
        commands = _runs(one, merged, spaces)
        measured: dict = {name: [] for name in commands}
        for number in range(args.rounds):
            order = list(commands) if number % 2 == 0 else list(reversed(commands))
            for name in order:
                result = measure.measured(commands[name], env, running.process_group)
                if str(args.entities) not in result.stdout.replace(',', ''):
                    raise RuntimeError(f'{name} did not read {args.entities}:\n{result.stdout}')
                measured[name].append(result)
            print(f'round {number + 1}: ' + ', '.join(
                f'{name} {measured[name][-1].seconds:.1f} s' for name in commands), flush=True)
    print(f'\n(python -m bench.namespaces --entities {args.entities} --parts {args.parts} '
          f'--rounds {args.rounds}: {time.perf_counter() - began:.0f} s in all)\n')
    print('| run | seconds (median) | each round | peak RSS | Python CPU s | JVM CPU s |')
    print('|---|---|---|---|---|---|')
    medians = {}
    for name, results in measured.items():
        medians[name] = statistics.median(r.seconds for r in results)
        print(f'| {name} | {medians[name]:.1f} | '
              f'{", ".join(f"{r.seconds:.1f}" for r in results)} | '
              f'{max(r.peak_bytes for r in results) / 2**20:.0f} MiB | '
              f'{statistics.median(r.cpu for r in results):.1f} | '
              f'{statistics.median(r.jvm_cpu for r in results):.1f} |')
    names = list(medians)
    print(f'\n{args.parts} namespaces / one: emulator {medians[names[1]] / medians[names[0]]:.2f}x, '
          f'export {medians[names[3]] / medians[names[2]]:.2f}x (target <= 1.15x)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
