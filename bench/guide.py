"""`make bench`, the guide's shape: the guide's own job on data shaped like it.

    python -m bench.guide [--sizes 20000,100000] [--rounds 3] [--rounds-large 1]
                          [--no-profile]

`InteractionAuditOneOffJob` (pipelines/exp_jobs_one_off.py) over explorations
made by bench/guide_data.py (its own seed: 10% deleted, 1-6 states, each an
interaction id out of 5 and ~130 characters of HTML), three ways, each in a
process of its own, timed after its imports:

1. **Job.enqueue**: `Job.create_new()` then `Job.enqueue()`, as legacy code
   runs it (record, read, map, shuffle, reduce, stored output, read back).
2. **hand-written Beam, raw**: `ReadFromDatastore(num_splits=8)` → `FlatMap`
   (`json.loads` of the states, no ndb) → `GroupByKey` → format
   (bench/variants.py); the issue's comparison. 2'. **ndb**: the same, but
   entity → ndb model → the job's own `map` (no target: shown for scale).
3. **plain client scan**: one `google-cloud-datastore` query, ndb models in
   one context, the job's `map`, a dict as the group-by, `reduce`.

At each size: the data is written as an export and imported into an
in-memory emulator of that size's own (namespace `guide-N`: the emulator's
cost per query page grows with every entity of the kind it holds, in any
namespace), one untimed scan
warms the JVM, then rounds (each runs all three, which goes first rotating),
medians; then one profiled run of Job.enqueue (bench/profile_guide.py). The
targets (issue 33): <= 0.70x the plain scan and <= 0.80x hand-written Beam.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Optional, Sequence

from bench import measure

PROJECT = 'beam-jobs-local'
VARIANTS = ('enqueue', 'hand_beam', 'hand_beam_ndb', 'plain_scan')
NAMES = {'enqueue': 'Job.enqueue', 'hand_beam': 'hand-written Beam, raw (8 splits)',
         'hand_beam_ndb': 'hand-written Beam, ndb (8 splits)',
         'plain_scan': 'plain client scan'}
TARGETS = {'hand_beam': 0.80, 'plain_scan': 0.70}
NEEDED = ('enqueue', *TARGETS)
SPLITS = 8


def load(host: str, work: str, namespace: str, count: int) -> float:
    """`count` guide-shaped explorations into `namespace`, via an export;
    the seconds it took."""
    from google.auth import credentials as auth_credentials
    from google.cloud import ndb

    from beam_jobs.export import import_into_emulator, write_export
    from bench import guide_data

    client = ndb.Client(project=PROJECT, namespace=namespace,
                        credentials=auth_credentials.AnonymousCredentials())

    def models():
        with client.context():
            yield from guide_data.explorations(count)
    began = time.perf_counter()
    path = write_export(models(), os.path.join(work, f'load-{namespace}'), PROJECT)
    import_into_emulator(host, PROJECT, path)
    return time.perf_counter() - began


# The child: one variant, timed after its imports, as JSON.

def _child(variant: str) -> int:
    from beam_jobs import target as target_lib
    from bench import variants
    target = target_lib.Target.from_environment()
    run = {'enqueue': lambda: variants.beam_jobs_enqueue(target),
           'hand_beam': lambda: variants.hand_beam_raw(target, SPLITS, []),
           'hand_beam_ndb': lambda: variants.hand_beam_datastore(target, SPLITS, []),
           'plain_scan': lambda: variants.plain_scan(target)}[variant]
    start, cpu = time.perf_counter(), time.process_time()
    lines = run()
    print(json.dumps({'seconds': time.perf_counter() - start,
                      'cpu': time.process_time() - cpu, 'lines': lines}))
    return 0


def _env(running, work: str, namespace: str) -> dict:
    return dict(os.environ, **running.env(), DATASTORE_NAMESPACE=namespace,
                BEAM_JOBS_HOME=os.path.join(work, 'home'),
                BEAM_JOBS_REQUIRE_REHEARSAL='false', PYTHONWARNINGS='ignore')


def _child_run(variant: str, env: dict, jvm_group) -> dict:
    result = measure.measured([sys.executable, '-m', 'bench.guide', '--child', variant],
                              env, jvm_group)
    timed = json.loads(result.stdout.strip().splitlines()[-1])
    return {'seconds': timed['seconds'], 'cpu': timed['cpu'], 'peak': result.peak_bytes,
            'jvm_cpu': result.jvm_cpu, 'lines': timed['lines']}


def _size(running, work: str, count: int, rounds: int, profile: bool) -> list[str]:
    namespace = f'guide-{count}'
    seconds = load(running.host, work, namespace, count)
    print(f'Loaded {count:,} guide-shaped explorations into {namespace} in {seconds:.1f} s.',
          flush=True)
    env = _env(running, work, namespace)
    # The JVM's JIT and its collection of what the import left behind are
    # paid by an untimed scan, not by the first variant.
    _child_run('plain_scan', env, None)
    # Above 20,000 without the ndb variant: each run takes minutes there.
    chosen = VARIANTS if count <= 20_000 else tuple(v for v in VARIANTS if v in NEEDED)
    results: dict = {variant: [] for variant in chosen}
    for round_number in range(rounds):
        shift = round_number % len(chosen)
        for variant in chosen[shift:] + chosen[:shift]:
            run = _child_run(variant, env, running.process_group)
            results[variant].append(run)
            print(f'  {count:,} round {round_number + 1}: {variant} {run["seconds"]:.2f} s '
                  f'(py CPU {run["cpu"]:.2f}, JVM CPU {run["jvm_cpu"]:.2f}, '
                  f'{run["peak"] / 2**20:.0f} MiB)', flush=True)
    rows, medians = [], {}
    for variant, runs in results.items():
        median = medians[variant] = statistics.median(r['seconds'] for r in runs)
        rows.append(f'| {NAMES[variant]} | {count:,} | {median:.2f} | '
                    f'{max(r["peak"] for r in runs) / 2**20:.0f} | '
                    f'{statistics.mean(r["cpu"] for r in runs):.2f} | '
                    f'{statistics.mean(r["jvm_cpu"] for r in runs):.2f} | '
                    f'{runs[-1]["lines"]} |')
    ratios = []
    for other in chosen[1:]:
        ratio = medians['enqueue'] / medians[other]
        target = TARGETS.get(other)
        goal = ('' if target is None else
                f' (target <= {target:.2f}x: {"met" if ratio <= target else "NOT met"})')
        ratios.append(f'- {count:,}: Job.enqueue / {NAMES[other]} {ratio:.2f}x{goal}')
    if profile:
        from bench import profile_guide
        print(f'\nProfile of one Job.enqueue at {count:,}:', flush=True)
        report = measure.measured([sys.executable, '-m', 'bench.profile_guide',
                                   '--jvm-group', str(running.process_group)], env)
        print(report.stdout, flush=True)
        ratios.append(profile_guide.summary_line(report.stdout))
    return rows, ratios


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', default='20000,100000')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--rounds-large', type=int, default=1,
                        help='rounds at sizes above 20,000 (each round of 100,000 '
                        'takes minutes: the emulator reads in quadratic time)')
    parser.add_argument('--no-profile', action='store_true')
    parser.add_argument('--child', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child)
    began = time.perf_counter()
    rows, ratios = [], []
    for count in (int(size) for size in args.sizes.split(',')):
        rounds = args.rounds if count <= 20_000 else args.rounds_large
        # An emulator of its own for each size: its cost per query page grows
        # with every entity of the kind it holds, in any namespace.
        with measure.own_emulator(PROJECT, 'bench-guide-') as (running, work):
            size_rows, size_ratios = _size(running, work, count, rounds, not args.no_profile)
        rows += size_rows
        ratios += size_ratios
    print(f'\n(python -m bench.guide {" ".join(argv or sys.argv[1:])}: '
          f'{time.perf_counter() - began:.0f} s in all)\n')
    print('| variant | entities | wall s | peak MiB | py CPU s | JVM CPU s | lines |')
    print('|---|---|---|---|---|---|---|')
    print('\n'.join(rows) + '\n')
    print('\n'.join(ratios))
    return 0


if __name__ == '__main__':
    sys.exit(main())
