"""`make bench`, third part: data shaped as production holds it.

    python -m bench.shapes [--shapes-n 20000] [--kinds-n 10000,50000] [--rounds 3]
                           [--parts shapes,kinds,blobs]

1. **Shapes** (`--shapes-n` entities each): many small properties, long text,
   nested JSON, repeated properties (bench/shape_jobs.py). For each, the job
   run as legacy code runs it (`Job.create_new()` + `Job.enqueue()`: run
   record, read, map, shuffle, reduce, stored output) against a plain client
   scan of the same entities (the client's query, ndb models built in one
   context, the job's `map`, a dict as the group-by, its `reduce`): the
   issue-21 target is <= 0.70x in every shape. Each is timed inside a fresh
   process after its imports, in rounds (each round runs both once), median.
2. **Kinds**: a job over one kind of 12 KB documents against the same job
   over that kind and a second, small one, at each of `--kinds-n` entities per
   kind: seconds and peak MiB of `beam-jobs run` (process tree, start-up
   included). Peak memory must not grow with the number of kinds.
3. **Blobs**: reads of 30 KB, 300 KB and 1 MB entities through `beam-jobs
   run` (about 60 MB of each): seconds per MB and peak MiB.

Data is written as an export (export/writer.py) and imported into the
emulator (`:import`), the fast way to load it; each part uses its own
namespace.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Optional, Sequence

from bench import measure

PROJECT = 'beam-jobs-local'
BLOB_COUNTS = {'Blob30K': 2000, 'Blob300K': 200, 'Blob1M': 60}


# Loading.

def _load(host: str, work: str, namespace: str, counts: dict) -> None:
    """`counts` ({kind: n}) entities into `namespace`, via an export."""
    from google.auth import credentials as auth_credentials
    from google.cloud import ndb

    from beam_jobs.export import import_into_emulator, write_export
    from bench import shape_jobs

    client = ndb.Client(project=PROJECT, namespace=namespace,
                        credentials=auth_credentials.AnonymousCredentials())

    def models():
        with client.context():
            for kind, count in counts.items():
                for index in range(count):
                    yield shape_jobs.make(kind, index)
    began = time.perf_counter()
    path = write_export(models(), os.path.join(work, f'load-{namespace}'), PROJECT)
    import_into_emulator(host, PROJECT, path)
    print(f'Loaded {counts} into {namespace} in {time.perf_counter() - began:.1f} s.',
          flush=True)


# The child: one variant, timed after its imports, as JSON.

def _child(variant: str, kind: str) -> int:
    from beam_jobs import target as target_lib
    from bench import shape_jobs
    job = shape_jobs.SHAPE_JOBS[kind]
    target = target_lib.Target.from_environment()
    start, cpu = time.perf_counter(), time.process_time()
    if variant == 'enqueue':
        job_id = job.create_new()
        job.enqueue(job_id)
        if job.get_status_code(job_id) != 'completed':
            raise RuntimeError(job.get_error(job_id))
        lines = len(job.get_output(job_id))
    else:
        lines = plain_scan(job, target)
    print(json.dumps({'seconds': time.perf_counter() - start,
                      'cpu': time.process_time() - cpu, 'lines': lines}))
    return 0


def plain_scan(job: type, target) -> int:
    """What a hand-written loop does: one query, models built by ndb in one
    context, `map`, a dict as the group-by, `reduce`. Its client is the same
    as the framework's (on the emulator, without gRPC's 4 MiB cap: the
    default client cannot read a page of 20 KB entities at all)."""
    import collections

    from google.auth import credentials as auth_credentials
    from google.cloud import ndb

    from beam_jobs import entities
    from beam_jobs import target as target_lib
    from beam_jobs.compat import ndb as ndb_compat
    [model_class] = job.entity_classes_to_map_over()
    client = target_lib.client(target)
    ndb_client = ndb.Client(project=target.project, namespace=target.namespace,
                            credentials=auth_credentials.AnonymousCredentials())
    groups = collections.defaultdict(list)
    with ndb_client.context():
        for entity in client.query(kind=entities.kind_of(model_class)).fetch():
            model = ndb_compat.from_client_entity(entity, model_class)
            for key, value in job.map(model) or ():
                groups[str(key)].append(str(value))
    return sum(len(list(job.reduce(key, values))) for key, values in groups.items())


# The parent.

def _env(running, work: str, namespace: str) -> dict:
    return dict(os.environ, **running.env(), DATASTORE_NAMESPACE=namespace,
                BEAM_JOBS_HOME=os.path.join(work, 'home'),
                BEAM_JOBS_REQUIRE_REHEARSAL='false', PYTHONWARNINGS='ignore')


def _child_run(variant: str, kind: str, env: dict, jvm_group) -> dict:
    result = measure.measured([sys.executable, '-m', 'bench.shapes', '--child', variant,
                               '--kind', kind], env, jvm_group)
    timed = json.loads(result.stdout.strip().splitlines()[-1])
    return {'seconds': timed['seconds'], 'cpu': timed['cpu'], 'peak': result.peak_bytes,
            'jvm_cpu': result.jvm_cpu}


def _cli_run(job: str, env: dict, jvm_group) -> dict:
    result = measure.measured([sys.executable, '-m', 'beam_jobs.cli', '--registry',
                               'bench.shape_jobs', 'run', job], env, jvm_group,
                              ok_codes=(0, 3))
    return {'seconds': result.seconds, 'cpu': result.cpu, 'peak': result.peak_bytes,
            'jvm_cpu': result.jvm_cpu}


def _median(results: list[dict]) -> dict:
    return {name: statistics.median(r[name] for r in results) for name in results[0]} | {
        'peak': max(r['peak'] for r in results), 'runs': [r['seconds'] for r in results]}


def _shapes(running, work: str, count: int, rounds: int) -> list[str]:
    from bench import shape_jobs
    rows, ratios = [], []
    namespace = f'shapes-{count}'
    _load(running.host, work, namespace, {kind: count for kind in shape_jobs.SHAPE_JOBS})
    env = _env(running, work, namespace)
    for kind in shape_jobs.SHAPE_JOBS:
        # The JVM's JIT and its collection of what the load left behind are
        # paid by an untimed scan of each kind, not by the first variant.
        _child_run('plain', kind, env, None)
        results = {'enqueue': [], 'plain': []}
        for round_number in range(rounds):
            # Alternating which goes first, so a slow moment of the shared
            # machine falls on both alike.
            order = list(results) if round_number % 2 == 0 else list(reversed(results))
            for variant in order:
                results[variant].append(_child_run(variant, kind, env,
                                                   running.process_group))
        enqueue, plain = _median(results['enqueue']), _median(results['plain'])
        ratio = enqueue['seconds'] / plain['seconds']
        ratios.append(ratio)
        for name, row in (('Job.enqueue', enqueue), ('plain client scan', plain)):
            rows.append(f'| {kind} | {name} | {count:,} | {row["seconds"]:.2f} | '
                        f'{row["peak"] / 2**20:.0f} | {row["cpu"]:.2f} | {row["jvm_cpu"]:.2f} |')
        print(f'  {kind}: enqueue {enqueue["runs"]}, plain {plain["runs"]}: {ratio:.2f}x',
              flush=True)
    lines = ['| shape | variant | entities | wall s | peak MiB | py CPU s | JVM CPU s |',
             '|---|---|---|---|---|---|---|', *rows, '']
    for kind, ratio in zip(shape_jobs.SHAPE_JOBS, ratios):
        lines.append(f'- {kind}: Job.enqueue / plain client scan {ratio:.2f}x '
                     f'(target <= 0.70x: {"met" if ratio <= 0.70 else "not met"})')
    return lines


def _kinds(running, work: str, sizes: list[int], rounds: int) -> list[str]:
    rows = []
    for size in sizes:
        namespace = f'kinds-{size}'
        _load(running.host, work, namespace, {'BigDoc': size, 'SmallDoc': size})
        env = _env(running, work, namespace)
        times = rounds if size <= 10_000 else 1
        measured = {'BigDocJob': [], 'TwoKindsJob': []}
        for _ in range(times):
            for job in measured:
                measured[job].append(_cli_run(job, env, running.process_group))
        one, two = _median(measured['BigDocJob']), _median(measured['TwoKindsJob'])
        for name, row in (('one kind (BigDoc)', one), ('two kinds (BigDoc + SmallDoc)', two)):
            rows.append(f'| {name} | {size:,} per kind | {row["seconds"]:.2f} | '
                        f'{row["peak"] / 2**20:.0f} | {row["cpu"]:.2f} | {row["jvm_cpu"]:.2f} |')
        print(f'  kinds at {size:,}: one {one["runs"]} {one["peak"] / 2**20:.0f} MiB, '
              f'two {two["runs"]} {two["peak"] / 2**20:.0f} MiB', flush=True)
    return ['| job | entities | wall s | peak MiB | py CPU s | JVM CPU s |',
            '|---|---|---|---|---|---|', *rows]


def _blobs(running, work: str, rounds: int) -> list[str]:
    from bench import shape_jobs
    rows = []
    namespace = 'blobs'
    _load(running.host, work, namespace, BLOB_COUNTS)
    env = _env(running, work, namespace)
    for kind, job in shape_jobs.BLOB_JOBS.items():
        row = _median([_cli_run(job.__name__, env, running.process_group)
                       for _ in range(rounds)])
        megabytes = BLOB_COUNTS[kind] * {'Blob30K': 0.03, 'Blob300K': 0.3, 'Blob1M': 1.0}[kind]
        rows.append(f'| {kind} | {BLOB_COUNTS[kind]:,} | {megabytes:.0f} | '
                    f'{row["seconds"]:.2f} | {row["seconds"] / megabytes:.3f} | '
                    f'{row["peak"] / 2**20:.0f} |')
        print(f'  {kind}: {row["runs"]}, {row["peak"] / 2**20:.0f} MiB', flush=True)
    return ['| entities | count | MB | wall s (beam-jobs run) | s per MB | peak MiB |',
            '|---|---|---|---|---|---|', *rows]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--shapes-n', type=int, default=20000)
    parser.add_argument('--kinds-n', default='10000,50000')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--parts', default='shapes,kinds,blobs')
    parser.add_argument('--child', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--kind', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child, args.kind)
    from beam_jobs import emulator
    parts = args.parts.split(',')
    work = tempfile.mkdtemp(prefix='bench-shapes-')
    running = emulator.start(project=PROJECT)
    began = time.perf_counter()
    tables = []
    try:
        if 'shapes' in parts:
            tables.append(_shapes(running, work, args.shapes_n, args.rounds))
        if 'kinds' in parts:
            tables.append(_kinds(running, work, [int(n) for n in args.kinds_n.split(',')],
                                 args.rounds))
        if 'blobs' in parts:
            tables.append(_blobs(running, work, args.rounds))
    finally:
        running.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f'\n(python -m bench.shapes {" ".join(argv or sys.argv[1:])}: '
          f'{time.perf_counter() - began:.0f} s in all)\n')
    for table in tables:
        print('\n'.join(table) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
