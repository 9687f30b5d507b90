"""`make bench`: what before-images cost a migration, and what a revert costs.

    python -m bench.backups --entities 100000 [--rounds 3]

Starts its own in-memory emulator and writes the sample explorations as an
export once; then, in each round, imports that export into the namespace (so
every measured run starts from the same data) and runs the demo migration
(`ExplorationContentMigrationOneOffJob`) through the CLI, each in a process of
its own: once with `--no-backup`, once keeping before-images, then the revert
of that second run. Prints medians (wall time, peak RSS of the process tree,
Python CPU, emulator JVM CPU) and the ratios the targets are stated in:
backup / no backup (time and memory), revert / migration (time).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from typing import Optional, Sequence

from bench import measure

PROJECT = 'beam-jobs-local'
NAMESPACE = 'bench-backups'
JOB = 'ExplorationContentMigrationOneOffJob'


def _cli(*argv: str) -> list[str]:
    return [sys.executable, '-m', 'beam_jobs.cli', '--registry',
            'pipelines.jobs_registry', *argv]


def _measure(command: list[str], env: dict, jvm_group) -> tuple[dict, str]:
    result = measure.measured(command, env, jvm_group, ok_codes=(0, 3))
    return ({'seconds': result.seconds, 'peak': result.peak_bytes, 'cpu': result.cpu,
             'jvm_cpu': result.jvm_cpu}, result.stdout)


def _run_id(stdout: str) -> str:
    return re.search(r'^Run (\S+)', stdout, re.M).group(1)


def _round(host: str, export: str, env: dict, jvm_group, backup_first: bool) -> dict:
    """One round; which migration goes first alternates between rounds, so a
    slow moment of the shared machine falls on both alike."""
    from beam_jobs.export import import_into_emulator
    measured = {}
    for keeps in ((True, False) if backup_first else (False, True)):
        import_into_emulator(host, PROJECT, export)
        if not keeps:
            measured['no_backup'], _ = _measure(_cli('run', JOB, '--no-backup'), env, jvm_group)
            continue
        measured['backup'], out = _measure(_cli('run', JOB), env, jvm_group)
        writes = re.search(r'before-images of (\d+) writes', out)
        measured['writes'] = int(writes.group(1)) if writes else None
        measured['revert'], revert_out = _measure(_cli('revert', _run_id(out)), env, jvm_group)
        if 'WRITES: put' not in revert_out:
            raise RuntimeError(f'The revert wrote nothing:\n{revert_out}')
    return measured


def _median(rounds: list[dict], name: str) -> dict:
    runs = [r[name] for r in rounds]
    return {field: statistics.median(run[field] for run in runs) for field in runs[0]} | {
        'peak': max(run['peak'] for run in runs), 'all': [run['seconds'] for run in runs]}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--entities', type=int, default=20000)
    parser.add_argument('--rounds', type=int, default=3)
    args = parser.parse_args(argv)
    from pipelines import sample_data
    began = time.perf_counter()
    with measure.own_emulator(PROJECT, 'bench-backups-') as (running, work):
        export = sample_data.export(args.entities, os.path.join(work, 'export'), PROJECT,
                                    namespace=NAMESPACE)
        env = dict(os.environ, **running.env(), DATASTORE_NAMESPACE=NAMESPACE,
                   BEAM_JOBS_HOME=os.path.join(work, 'home'),
                   BEAM_JOBS_REQUIRE_REHEARSAL='false', PYTHONWARNINGS='ignore')
        jvm_group = running.process_group
        rounds = []
        for number in range(args.rounds):
            rounds.append(_round(running.host, export, env, jvm_group, number % 2 == 1))
            print(f'round {number + 1}: ' + ', '.join(
                f'{name} {rounds[-1][name]["seconds"]:.1f} s'
                for name in ('no_backup', 'backup', 'revert')), flush=True)
    rows = {name: _median(rounds, name) for name in ('no_backup', 'backup', 'revert')}
    print(f'\n(python -m bench.backups --entities {args.entities} --rounds {args.rounds}: '
          f'{time.perf_counter() - began:.0f} s in all; {rounds[0]["writes"]} writes a run)\n')
    print('| run | seconds (median) | each round | peak RSS | Python CPU s | JVM CPU s |')
    print('|---|---|---|---|---|---|')
    labels = {'no_backup': f'migration, --no-backup', 'backup': 'migration, before-images kept',
              'revert': 'revert of it'}
    for name, row in rows.items():
        print(f'| {labels[name]} | {row["seconds"]:.1f} | '
              f'{", ".join(f"{s:.1f}" for s in row["all"])} | '
              f'{row["peak"] / 2**20:.0f} MiB | {row["cpu"]:.1f} | {row["jvm_cpu"]:.1f} |')
    print(f'\nbackup / no backup: time {rows["backup"]["seconds"] / rows["no_backup"]["seconds"]:.2f}x '
          f'(target <= 1.25x), peak memory {rows["backup"]["peak"] / rows["no_backup"]["peak"]:.2f}x '
          f'(target <= 1.10x); revert / migration: time '
          f'{rows["revert"]["seconds"] / rows["backup"]["seconds"]:.2f}x (target <= 1.00x)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
