"""`make bench`: beam-jobs, hand-written Beam and a plain loop, side by side.

    python -m bench.run --entities 20000 [--repeats 3] [--items 1000000]

Starts its own in-memory emulator (or uses one with --host), loads the
sample explorations into a namespace, then runs the variants in rounds, each
run in a fresh subprocess (so one variant's memory never counts against
another's), and prints each variant's median. Peak memory is the highest
summed RSS of the variant's process tree (runner workers included), sampled
every 50 ms, or the kernel's high-water mark (VmHWM) of the child if that is
higher. JVM CPU is the emulator's CPU time during the run; Python CPU is the
timed run's own (its process and finished children, imports excluded).
bench/README.md has the variants, the targets and the last results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Optional, Sequence

from bench import measure

DATASTORE_VARIANTS = ('beam_jobs_enqueue', 'beam_jobs', 'hand_beam_raw',
                      'hand_beam', 'plain_scan')
MEMORY_VARIANTS = ('beam_jobs_mem', 'beam_jobs_mem_combine', 'hand_beam_mem',
                   'plain_mem')
NAMESPACE = 'bench'


# The child: run one variant `repeats` times, print one JSON line.

def _child(args) -> int:
    from beam_jobs import target as target_lib
    from bench import variants
    target = target_lib.Target(os.environ['DATASTORE_PROJECT_ID'], args.namespace)
    runner_args = args.runner_args.split()
    run = {
        'beam_jobs': lambda: variants.beam_jobs_datastore(
            target, args.splits, runner_args),
        'beam_jobs_enqueue': lambda: variants.beam_jobs_enqueue(target),
        'hand_beam_raw': lambda: variants.hand_beam_raw(
            target, args.splits, runner_args),
        'hand_beam': lambda: variants.hand_beam_datastore(
            target, args.splits, runner_args),
        'plain_scan': lambda: variants.plain_scan(target),
        'beam_jobs_mem': lambda: variants.beam_jobs_memory(
            args.items, runner_args),
        'beam_jobs_mem_combine': lambda: variants.beam_jobs_memory(
            args.items, runner_args, variants.CombinedTopicCountJob),
        'hand_beam_mem': lambda: variants.hand_beam_memory(
            args.items, runner_args),
        'plain_mem': lambda: variants.plain_memory(args.items),
    }[args.child]
    times, lines = [], None
    if args.profile:
        import cProfile
        import pstats
        profile = cProfile.Profile()
        start = time.perf_counter()
        profile.runcall(run)
        print(f'{args.child}: {time.perf_counter() - start:.2f} s under cProfile '
              '(this process only)', file=sys.stderr)
        stats = pstats.Stats(profile, stream=sys.stderr)
        stats.sort_stats('tottime').print_stats(25)
        stats.sort_stats('cumulative').print_stats(40)
        return 0
    cpu = []
    for _ in range(args.repeats):
        cpu_before = _process_cpu()
        start = time.perf_counter()
        lines = run()
        times.append(time.perf_counter() - start)
        cpu.append(_process_cpu() - cpu_before)
    print(json.dumps({'times': times, 'cpu': cpu, 'lines': lines,
                      'hwm': _own_hwm()}))
    return 0


def _process_cpu() -> float:
    """CPU seconds of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _own_hwm() -> int:
    """This process's RSS high-water mark (VmHWM), in bytes."""
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    return 0


# The parent: processes, memory and CPU.

def _run_child(variant: str, args, env: dict, jvm_group: Optional[int]) -> dict:
    command = [sys.executable, '-m', 'bench.run', '--child', variant,
               '--namespace', args.namespace,
               '--splits', str(args.splits), '--items', str(args.items),
               '--repeats', '1', '--runner-args', args.runner_args]
    jvm = measure.group_pids(jvm_group)
    jvm_before = measure.cpu_secs(jvm)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.wait(0.05):
            peak[0] = max(peak[0], measure.rss_bytes(measure.process_tree(process.pid)))
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout = process.stdout.read()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f'{variant} failed:\n{stderr[-3000:]}')
    result = json.loads(stdout.strip().splitlines()[-1])
    # Not ru_maxrss: Linux carries the parent's high-water mark into a
    # child across fork and exec, so it would report the loader's memory.
    result['peak_bytes'] = max(peak[0], result['hwm'])
    repeats = len(result['times'])
    # The runs' own CPU, not the imports before them (the whole process's
    # CPU if the child could not say).
    result['python_cpu'] = (statistics.mean(result['cpu']) if result.get('cpu')
                            else (usage.ru_utime + usage.ru_stime) / repeats)
    result['jvm_cpu'] = (measure.cpu_secs(jvm) - jvm_before) / repeats
    result['median'] = statistics.median(result['times'])
    return result


def _empty_job_secs(env: dict, repeats: int) -> list[float]:
    """`beam-jobs run` over an empty namespace, process start-up included."""
    cli = os.path.join(os.path.dirname(sys.executable), 'beam-jobs')
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([cli, '--namespace', 'bench-empty', 'run',
                        'InteractionAuditOneOffJob'], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def _machine() -> str:
    import apache_beam
    with open('/proc/meminfo') as meminfo:
        mem_kib = int(meminfo.readline().split()[1])
    cpu = ''
    with open('/proc/cpuinfo') as cpuinfo:
        for line in cpuinfo:
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    return (f'{os.cpu_count()} cores ({cpu}), {mem_kib / 2**20:.1f} GiB RAM, '
            f'Python {platform.python_version()}, apache-beam '
            f'{apache_beam.__version__}, {platform.platform()}')


def _row(name: str, result: dict, count: int) -> str:
    return (f'| {name:<34} | {result["median"]:7.2f} | '
            f'{count / result["median"]:>9,.0f} | '
            f'{result["peak_bytes"] / 2**20:7.0f} | '
            f'{result["python_cpu"]:6.2f} | {result["jvm_cpu"]:6.2f} | '
            f'{result["lines"]} |')


def _jvm_group(host: str) -> Optional[int]:
    """The process group of the emulator's JVM that listens on `host`."""
    port = host.rsplit(':', 1)[-1]
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open(f'/proc/{name}/cmdline', 'rb') as cmdline:
                argv = cmdline.read().split(b'\0')
            if b'java' in argv[0] and f'--port={port}'.encode() in argv:
                return os.getpgid(int(name))
        except OSError:
            continue
    return None


def _count_entities(target) -> int:
    from google.cloud import datastore as ds_client
    client = ds_client.Client(project=target.project, namespace=target.namespace)
    query = client.query(kind='ExplorationModel')
    query.keys_only()
    return sum(1 for _ in query.fetch())


def _median_of_runs(runs: list[dict]) -> dict:
    """One variant's rounds (one run each) as one result."""
    times = [t for run in runs for t in run['times']]
    return {'times': times, 'median': statistics.median(times),
            'lines': runs[-1]['lines'],
            'peak_bytes': max(run['peak_bytes'] for run in runs),
            'python_cpu': statistics.mean(run['python_cpu'] for run in runs),
            'jvm_cpu': statistics.mean(run['jvm_cpu'] for run in runs)}


def _parent(args) -> int:
    from beam_jobs import target as target_lib
    from beam_jobs import emulator as emulator_lib
    from beam_jobs import options as options_lib
    from pipelines import sample_data
    from bench import variants

    print(f'Machine: {_machine()}')
    print(f'Local runner: {options_lib.LOCAL_RUNNER}, mode '
          f'{options_lib.LOCAL_RUNNING_MODE}, {options_lib.LOCAL_NUM_WORKERS} '
          f'worker(s); extra runner args: {args.runner_args or "none"}; '
          f'read splits: {args.splits}; repeats: {args.repeats}')
    if args.host:
        running = emulator_lib.Emulator(
            host=args.host, project=os.environ.get('DATASTORE_PROJECT_ID',
                                                   emulator_lib.DEFAULT_PROJECT))
        group = _jvm_group(args.host)
    else:
        running = emulator_lib.start()
        group = running.process_group
    home = tempfile.mkdtemp(prefix='beam-jobs-bench-')
    try:
        # Run logs and records of the enqueue variant go to a scratch folder.
        env = dict(os.environ, **running.env(), **{emulator_lib.HOME_ENV: home})
        env.pop(target_lib.NAMESPACE_ENV, None)
        os.environ.update(running.env())
        target = target_lib.Target(running.project, args.namespace)
        if not args.host or _count_entities(target) < args.entities:
            start = time.perf_counter()
            sample_data.load(args.entities, target)
            print(f'Loaded {args.entities:,} explorations in '
                  f'{time.perf_counter() - start:.1f} s.', flush=True)
        # The emulator's JVM compiles and collects garbage after the load;
        # one untimed scan keeps that out of the first variant's numbers.
        variants.plain_scan(target, limit=min(args.entities, 20000))
        if args.profile:
            _profile(args.profile, args, env)
            return 0
        variants_to_run = args.variants.split(',') if args.variants else (
            DATASTORE_VARIANTS + (MEMORY_VARIANTS if args.items else ()))
        runs: dict[str, list] = {variant: [] for variant in variants_to_run}
        # Rounds, not one variant's repeats in a row: load from other users
        # of the machine then falls on every variant alike.
        for group_of, repeats in (
                ([v for v in variants_to_run if v not in MEMORY_VARIANTS], args.repeats),
                ([v for v in variants_to_run if v in MEMORY_VARIANTS], args.memory_repeats)):
            for round_number in range(repeats):
                for variant in group_of:
                    run = _run_child(variant, args, env, group)
                    runs[variant].append(run)
                    print(f'  round {round_number + 1}: {variant} {run["median"]:.2f} s '
                          f'(py CPU {run["python_cpu"]:.2f}, JVM CPU {run["jvm_cpu"]:.2f})',
                          flush=True)
        results = {variant: _median_of_runs(runs[variant]) for variant in variants_to_run}
        empty = shuffle = None
        if not args.variants:
            empty = _empty_job_secs(env, args.repeats)
            shuffle = {
                name: variants.shuffle_volume(job, target, args.splits,
                                              args.runner_args.split())
                for name, job in (('without combine', variants.InteractionCountJob),
                                  ('with combine',
                                   variants.CombinedInteractionCountJob))}
        _print_table(args, results, empty, shuffle)
    finally:
        if not args.host:
            running.stop()
        shutil.rmtree(home, ignore_errors=True)
    return 0


def _profile(variant: str, args, env: dict) -> None:
    """One run of `variant` under cProfile; prints its top costs."""
    command = [sys.executable, '-m', 'bench.run', '--child', variant,
               '--namespace', args.namespace, '--splits', str(args.splits),
               '--items', str(args.items), '--repeats', '1',
               '--runner-args', args.runner_args, '--profile', variant]
    subprocess.run(command, env=env, check=True)


def _print_table(args, results, empty, shuffle) -> None:
    names = {
        'beam_jobs_enqueue': '1. beam-jobs Job.enqueue',
        'beam_jobs': "1'. beam-jobs RunJob",
        'hand_beam_raw': '2. hand-written Beam, raw',
        'hand_beam': "2'. hand-written Beam, ndb",
        'plain_scan': '3. plain client scan + dict',
        'beam_jobs_mem': 'a. beam-jobs MapReduce',
        'beam_jobs_mem_combine': "a'. beam-jobs MapReduce + combine",
        'hand_beam_mem': 'b. hand-written Beam',
        'plain_mem': 'c. plain Python loop',
    }
    print()
    print('| variant                            | wall s  | entities/s | peak MiB | py CPU | JVM CPU | lines |')
    print('|------------------------------------|---------|-----------|---------|--------|--------|-------|')
    for variant, result in results.items():
        count = args.items if variant.endswith(('_mem', '_combine')) else args.entities
        print(_row(names[variant], result, count))
    print()

    def ratio(a, b, target=None):
        if a in results and b in results:
            value = results[a]['median'] / results[b]['median']
            goal = '' if target is None else (
                f' (target <= {target:.2f}x: {"met" if value <= target else "NOT met"})')
            print(f'- {names[a]} / {names[b]}: {value:.2f}x{goal}')
    ratio('beam_jobs_enqueue', 'hand_beam_raw', 1.05)
    ratio('beam_jobs_enqueue', 'plain_scan', 0.7)
    ratio('beam_jobs', 'hand_beam_raw')
    ratio('beam_jobs', 'hand_beam')
    ratio('beam_jobs', 'plain_scan')
    ratio('hand_beam_raw', 'plain_scan')
    ratio('beam_jobs_mem', 'hand_beam_mem', 1.3)
    ratio('beam_jobs_mem', 'plain_mem')
    ratio('beam_jobs_mem_combine', 'hand_beam_mem')
    ratio('hand_beam_mem', 'plain_mem')
    if empty:
        print(f'- empty Datastore, `beam-jobs run` incl. start-up: median '
              f'{statistics.median(empty):.2f} s '
              f'(runs {", ".join(f"{t:.2f}" for t in empty)})')
    if shuffle:
        for name, volume in shuffle.items():
            print(f'- shuffle of a count-like job {name}: '
                  f'{volume["elements"]:,} elements, ~{volume["bytes"]:,} bytes')


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--entities', type=int, default=20000)
    parser.add_argument('--repeats', type=int, default=3,
                        help='rounds of the Datastore variants (each variant '
                        'once a round)')
    parser.add_argument('--memory-repeats', type=int, default=1,
                        help='rounds of the in-memory path')
    parser.add_argument('--items', type=int, default=1_000_000,
                        help='items of the in-memory path (0 skips it)')
    parser.add_argument('--splits', type=int, default=None,
                        help='key-range splits of each read (default: '
                        "beam-jobs' DEFAULT_SHARD_COUNT)")
    parser.add_argument('--runner-args', default='',
                        help='extra Beam flags for every Beam variant but '
                        'Job.enqueue (which takes none)')
    parser.add_argument('--variants', default='',
                        help='comma-separated subset to run (skips the rest)')
    parser.add_argument('--namespace', default=NAMESPACE)
    parser.add_argument('--host', default=None,
                        help='use the emulator already running on HOST '
                        '(loading the explorations only if its namespace '
                        'holds fewer) instead of starting one')
    parser.add_argument('--profile', default=None, metavar='VARIANT',
                        help='run VARIANT once under cProfile and print its '
                        'top costs, instead of the table')
    parser.add_argument('--child', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.splits is None:
        from beam_jobs.compile.transforms import DEFAULT_SHARD_COUNT
        args.splits = DEFAULT_SHARD_COUNT
    return _child(args) if args.child else _parent(args)


if __name__ == '__main__':
    sys.exit(main())
