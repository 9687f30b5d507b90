"""`make bench`, second part: exports against the emulator, rehearsals, progress.

    python -m bench.exports --sizes 20000,100000 [--huge 1000000] [--repeats 3]

What a coordinator runs, as they run it: each variant is a `beam-jobs`
command in its own process (start-up included), measured by bench/measure.py.

1. The audit over the emulator holding N explorations vs over an export of the
   same N, for each size. The emulator is loaded with `:import` of that
   export, one size at a time (its reads slow down with a kind's size).
2. With --huge: the audit over an export of that many explorations alone
   (sample_data's export: beyond its pool, copies of the same entity shapes),
   for time per entity and peak memory at production size.
3. At the largest size: a rehearsal of the migration with one verify job vs a
   plain `run --export` of the migration.
4. Progress updates: the export audit at the smallest size with progress
   reports every 2 s vs with them off (BEAM_JOBS_PROGRESS_INTERVAL=0), the two
   alternating, `--repeats` times each (at least 5).

Sizes above 20,000 are run once each (a minute or more a run); smaller ones
`--repeats` times, and the median is reported.

Targets (issues 8, 9, 10): export 100k <= 2 x emulator 20k; time per entity at
the huge size <= 1.25 x at 20k; peak memory at the huge size < 1 GiB;
rehearsal with one verify <= 3 x the plain export run; progress < 2 %.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Optional, Sequence

from bench import measure

AUDIT = 'InteractionAuditOneOffJob'
MIGRATION = 'ExplorationContentMigrationOneOffJob'
VALIDATION = 'ExplorationStatesSchemaValidationOneOffJob'
PROJECT = 'beam-jobs-local'


def _cli() -> list[str]:
    return [sys.executable, '-m', 'beam_jobs.cli']


def _median(runs: list[measure.Measured]) -> dict:
    return {'seconds': statistics.median(r.seconds for r in runs),
            'runs': [r.seconds for r in runs],
            'peak': max(r.peak_bytes for r in runs),
            'cpu': statistics.median(r.cpu for r in runs),
            'jvm_cpu': statistics.median(r.jvm_cpu for r in runs)}


def _repeat(command: Sequence[str], env: dict, repeats: int,
            jvm_group: Optional[int] = None) -> dict:
    # Exit code 3 is a run (or rehearsal) that completed with failed items:
    # the sample data holds a few broken explorations on purpose.
    return _median([measure.measured(command, env, jvm_group, ok_codes=(0, 3))
                    for _ in range(repeats)])


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', default='20000,100000')
    parser.add_argument('--huge', type=int, default=0,
                        help='also read an export of this many explorations alone')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--work', default=None, help='folder for the exports '
                        '(default: a temporary one, removed at the end)')
    args = parser.parse_args(argv)
    sizes = sorted(int(size) for size in args.sizes.split(','))
    work = args.work or tempfile.mkdtemp(prefix='beam-jobs-bench-')
    try:
        return _bench(sizes, args.huge, args.repeats, work)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


def _bench(sizes: list[int], huge: int, repeats: int, work: str) -> int:
    from beam_jobs import emulator
    from beam_jobs.export import import_into_emulator
    from pipelines import sample_data

    rows, exports = {}, {}
    for size in sizes:
        began = time.perf_counter()
        exports[size] = sample_data.export(size, os.path.join(work, f'export-{size}'),
                                           PROJECT, namespace=f'n{size}')
        print(f'Exported {size:,} explorations in {time.perf_counter() - began:.1f} s.',
              flush=True)
    running = emulator.start(project=PROJECT)
    home = os.path.join(work, 'home')
    base_env = dict(os.environ, **running.env(), BEAM_JOBS_HOME=home,
                    BEAM_JOBS_REQUIRE_REHEARSAL='false', PYTHONWARNINGS='ignore')
    base_env.pop('DATASTORE_NAMESPACE', None)
    try:
        for size in sizes:
            env = dict(base_env, DATASTORE_NAMESPACE=f'n{size}')
            began = time.perf_counter()
            import_into_emulator(running.host, PROJECT, exports[size])
            print(f'Imported {size:,} into the emulator in '
                  f'{time.perf_counter() - began:.1f} s.', flush=True)
            times = repeats if size <= 20000 else 1
            rows[('emulator', size)] = _repeat(_cli() + ['run', AUDIT], env, times,
                                               running.process_group)
            _say(f'audit over the emulator, {size:,}', rows[('emulator', size)])
            rows[('export', size)] = _repeat(
                _cli() + ['run', AUDIT, '--export', exports[size]], env, times)
            _say(f'audit over the export, {size:,}', rows[('export', size)])
        largest = sizes[-1]
        env = dict(base_env, DATASTORE_NAMESPACE=f'n{largest}')
        times = repeats if largest <= 20000 else 1
        # The other local mode at the largest size: the default is one
        # worker process per core from options.EXPORT_PROCESSES_FROM on.
        from beam_jobs import options
        threshold = options.EXPORT_PROCESSES_FROM
        other = ('1 process' if threshold and largest >= threshold
                 else f'{os.cpu_count()} processes')
        rows[(f'export, {other}', largest)] = _repeat(
            _cli() + ['run', AUDIT, '--export', exports[largest]],
            dict(env, BEAM_JOBS_EXPORT_PROCESSES_FROM='0' if other == '1 process' else '1'),
            times)
        _say(f'audit over the export, {other}, {largest:,}',
             rows[(f'export, {other}', largest)])
        rows['migration'] = _repeat(
            _cli() + ['run', MIGRATION, '--export', exports[largest]], env, times)
        _say(f'migration over the export, {largest:,}', rows['migration'])
        rows['rehearsal'] = _repeat(
            _cli() + ['rehearse', MIGRATION, '--export', exports[largest],
                      '--verify', VALIDATION], env, times)
        _say(f'rehearsal with one verify job, {largest:,}', rows['rehearsal'])
        small = sizes[0]
        command = _cli() + ['run', AUDIT, '--export', exports[small]]
        env = dict(base_env, DATASTORE_NAMESPACE=f'n{small}')
        with_on, with_off = [], []
        # A difference of a few per cent needs more runs than the rest.
        for _ in range(max(repeats, 5)):
            with_on.append(measure.measured(command, env))
            with_off.append(measure.measured(
                command, dict(env, BEAM_JOBS_PROGRESS_INTERVAL='0')))
        rows['progress_on'], rows['progress_off'] = _median(with_on), _median(with_off)
        os.environ.update(running.env())
        rows['report_cpu'] = progress_report_cost()
        _say(f'audit over the export, {small:,}, progress on', rows['progress_on'])
        _say(f'audit over the export, {small:,}, progress off', rows['progress_off'])
        if huge:
            # In the largest size's namespace, where the run reads it from.
            began = time.perf_counter()
            exports[huge] = sample_data.export(huge, os.path.join(work, f'export-{huge}'),
                                               PROJECT, namespace=f'n{largest}')
            print(f'Exported {huge:,} explorations in {time.perf_counter() - began:.1f} s.',
                  flush=True)
            env = dict(base_env, DATASTORE_NAMESPACE=f'n{largest}')
            rows[('export', huge)] = _repeat(
                _cli() + ['run', AUDIT, '--export', exports[huge]], env, 1)
            _say(f'audit over the export, {huge:,}', rows[('export', huge)])
            # The other mode at the huge size: a worker process per core.
            rows[(f'export, {os.cpu_count()} processes', huge)] = _repeat(
                _cli() + ['run', AUDIT, '--export', exports[huge]],
                dict(env, BEAM_JOBS_EXPORT_PROCESSES_FROM='1'), 1)
            _say(f'audit over the export, {os.cpu_count()} processes, {huge:,}',
                 rows[(f'export, {os.cpu_count()} processes', huge)])
    finally:
        running.stop()
    _table(rows, sizes, huge)
    return 0


def progress_report_cost(reports: int = 50) -> float:
    """CPU seconds one progress report costs the running process (a
    snapshot and the record's update, as the reporter thread makes them),
    against the emulator DATASTORE_EMULATOR_HOST names. Steadier than the
    on/off difference of whole runs, which the machine's noise swamps."""
    from beam_jobs import progress
    from beam_jobs import target as target_lib
    from beam_jobs.records import runs
    store = runs.RunStore(target_lib.Target.from_environment(PROJECT, 'progress-cost'))
    run_id = store.create('ProgressCost').run_id
    store.transition(run_id, runs.QUEUED)
    store.transition(run_id, runs.STARTED)
    totals = {'ExplorationModel': 20000}
    for _ in range(5):   # warm: connections, imports
        store.set_progress(run_id, progress.snapshot(totals))
    began = time.thread_time()
    for _ in range(reports):
        store.set_progress(run_id, progress.snapshot(totals))
    return (time.thread_time() - began) / reports


def _say(what: str, row: dict) -> None:
    print(f'  {what}: {row["seconds"]:.2f} s (runs '
          f'{", ".join(f"{t:.2f}" for t in row["runs"])}), peak '
          f'{row["peak"] / 2**20:.0f} MiB', flush=True)


def _table(rows: dict, sizes: list[int], huge: int) -> None:
    largest = sizes[-1]
    print('\n| variant | entities | wall s | µs/entity | peak MiB | py CPU s | JVM CPU s |')
    print('|---|---|---|---|---|---|---|')
    for key, row in rows.items():
        if not isinstance(key, tuple):
            continue
        source, size = key
        print(f'| audit over the {source} | {size:,} | {row["seconds"]:.2f} | '
              f'{row["seconds"] / size * 1e6:.0f} | {row["peak"] / 2**20:.0f} | '
              f'{row["cpu"]:.2f} | {row["jvm_cpu"]:.2f} |')
    small = min(sizes)
    for name, label, size in (
            ('migration', 'migration, run --export', largest),
            ('rehearsal', 'rehearse migration + 1 verify', largest),
            ('progress_on', 'audit over the export, progress on', small),
            ('progress_off', 'audit over the export, progress off', small)):
        row = rows[name]
        print(f'| {label} | {size:,} | {row["seconds"]:.2f} | '
              f'{row["seconds"] / size * 1e6:.0f} | {row["peak"] / 2**20:.0f} | '
              f'{row["cpu"]:.2f} | - |')
    print()
    if ('export', 100000) in rows and ('emulator', 20000) in rows:
        ratio = rows[('export', 100000)]['seconds'] / rows[('emulator', 20000)]['seconds']
        print(f'- export 100,000 / emulator 20,000: {ratio:.2f}x (target <= 2x)')
    for size in sizes:
        ratio = rows[('emulator', size)]['seconds'] / rows[('export', size)]['seconds']
        print(f'- emulator / export at {size:,}: {ratio:.1f}x')
    if huge:
        per_huge = rows[('export', huge)]['seconds'] / huge
        per_small = rows[('export', small)]['seconds'] / small
        print(f'- time per entity, {huge:,} / {small:,}: {per_huge / per_small:.2f}x '
              '(target <= 1.25x)')
        processes = rows[(f'export, {os.cpu_count()} processes', huge)]
        print(f'- peak memory at {huge:,}: {rows[("export", huge)]["peak"] / 2**20:.0f} MiB '
              f'by default (one process), {processes["peak"] / 2**20:.0f} MiB with '
              f'{os.cpu_count()} worker processes, {processes["seconds"]:.0f} s against '
              f'{rows[("export", huge)]["seconds"]:.0f} s (target < 1024)')
    print(f'- rehearsal (1 verify) / run --export at {largest:,}: '
          f'{rows["rehearsal"]["seconds"] / rows["migration"]["seconds"]:.2f}x (target <= 3x)')
    with_progress = rows['progress_on']['seconds']
    without = rows['progress_off']['seconds']
    print(f'- progress updates cost: {(with_progress - without) / without * 100:+.1f} % '
          f'of the run at {small:,} ({with_progress:.2f} s with, {without:.2f} s '
          'without, medians; target < 2 %)')
    from beam_jobs import progress
    per_report = rows['report_cpu']
    print(f'- one progress report: {per_report * 1000:.1f} ms of CPU; one every '
          f'{progress.DEFAULT_INTERVAL_SECS:g} s is '
          f'{per_report / progress.DEFAULT_INTERVAL_SECS * 100:.2f} % of a run (target < 2 %)')


if __name__ == '__main__':
    sys.exit(main())
