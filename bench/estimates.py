"""How good is an estimate? The demo migration's estimate from a small
rehearsal against a measured local run at the larger size.

    python -m bench.estimates --small 10000 --large 100000

Starts its own in-memory emulator (for the records), writes the sample
explorations as two exports, rehearses `ExplorationContentMigrationOneOffJob`
over the small one (which records the CPU its run measured), asks
`beam-jobs estimate` for the large one with one worker of one vCPU (what a
local run is), then rehearses the large one as well, the same work at ten
times the size, and prints the estimate beside what that run measured.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from typing import Optional, Sequence

from bench import measure

PROJECT = 'beam-jobs-local'
NAMESPACE = 'bench-estimates'
JOB = 'ExplorationContentMigrationOneOffJob'


def _cli(env: dict, *argv: str) -> str:
    done = subprocess.run([sys.executable, '-m', 'beam_jobs.cli', '--registry',
                           'pipelines.jobs_registry', *argv], env=env, text=True,
                          capture_output=True, check=False)
    if done.returncode not in (0, 3):
        raise RuntimeError(f'{argv[0]} failed ({done.returncode}):\n{done.stderr[-3000:]}')
    return done.stdout


def _measured(env: dict, out: str) -> dict:
    """What the rehearsal's run recorded: its CPU, its entities, its time."""
    from beam_jobs import target as target_lib
    from beam_jobs.records import rehearsals, runs
    rehearsal_id = re.search(r'^Rehearsal ID: (\S+)', out, re.M).group(1)
    target = target_lib.Target(PROJECT, NAMESPACE, env['DATASTORE_EMULATOR_HOST'])
    record = rehearsals.RehearsalStore(target).get(rehearsal_id)
    run = runs.RunStore(target).get(record.run_id)
    return {**record.measured, 'elapsed_seconds': run.usage['elapsed_seconds'],
            'rehearsal_id': rehearsal_id}


def main(argv: Optional[Sequence[str]] = None) -> int:
    began = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--small', type=int, default=10000, help='entities rehearsed')
    parser.add_argument('--large', type=int, default=100000, help='entities estimated')
    args = parser.parse_args(argv)
    from pipelines import sample_data
    with measure.own_emulator(PROJECT, 'bench-estimates-') as (running, work):
        env = dict(os.environ, **running.env(), DATASTORE_NAMESPACE=NAMESPACE,
                   BEAM_JOBS_HOME=os.path.join(work, 'home'), PYTHONWARNINGS='ignore')
        os.environ.update(running.env())
        exports = {size: sample_data.export(size, os.path.join(work, f'export-{size}'),
                                            PROJECT, namespace=NAMESPACE)
                   for size in (args.small, args.large)}
        print(f'exports written: {time.perf_counter() - began:.0f} s', flush=True)
        small = _measured(env, _cli(env, 'rehearse', JOB, '--export', exports[args.small]))
        print(f'rehearsal at {args.small}: {small}', flush=True)
        estimate = _cli(env, 'estimate', JOB, '--export', exports[args.large],
                        '--region', 'us-central1', '--max_num_workers', '1')
        print(estimate, flush=True)
        large = _measured(env, _cli(env, 'rehearse', JOB, '--export', exports[args.large]))
        print(f'rehearsal at {args.large}: {large}', flush=True)
    vcpu_hours = float(re.search(r'about (\S+) vCPU hours', estimate).group(1))
    cpu = vcpu_hours * 3600
    print(f'\n(python -m bench.estimates --small {args.small} --large {args.large}: '
          f'{time.perf_counter() - began:.0f} s in all)\n')
    print('| | CPU s | CPU ms / entity | wall s (1 worker) |')
    print('|---|---|---|---|')
    print(f'| rehearsal at {args.small:,} (measured) | {small["cpu_seconds"]:.1f} | '
          f'{small["cpu_seconds"] / small["entities"] * 1000:.3f} | '
          f'{small["elapsed_seconds"]:.1f} |')
    print(f'| estimate for {args.large:,} from it | {cpu:.1f} | '
          f'{cpu / args.large * 1000:.3f} | {cpu:.1f} |')
    print(f'| rehearsal at {args.large:,} (measured) | {large["cpu_seconds"]:.1f} | '
          f'{large["cpu_seconds"] / large["entities"] * 1000:.3f} | '
          f'{large["elapsed_seconds"]:.1f} |')
    print(f'\nestimate / measured: CPU {cpu / large["cpu_seconds"]:.2f}x, '
          f'wall {cpu / large["elapsed_seconds"]:.2f}x')
    return 0


if __name__ == '__main__':
    sys.exit(main())
