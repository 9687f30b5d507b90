"""`make bench`: beam-jobs, hand-written Beam and a plain loop, side by side.

    python -m bench.run --entities 20000 [--repeats 3] [--items 1000000]

Starts its own in-memory emulator, loads the sample explorations into a
namespace, then runs every variant in a fresh subprocess (so one variant's
memory never counts against another's), several times, and prints the
median. Peak memory is the highest summed RSS of the variant's process tree
(runner workers included), sampled every 50 ms, or the kernel's high-water
mark (VmHWM) of the child if that is higher. JVM CPU is the emulator's CPU time
during the variant, per run; Python CPU is the variant process tree's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from typing import Optional, Sequence

DATASTORE_VARIANTS = ('beam_jobs', 'hand_beam', 'plain_scan')
MEMORY_VARIANTS = ('beam_jobs_mem', 'beam_jobs_mem_combine', 'hand_beam_mem',
                   'plain_mem')
NAMESPACE = 'bench'
_PAGE = os.sysconf('SC_PAGE_SIZE')
_TICKS = os.sysconf('SC_CLK_TCK')


# The child: run one variant `repeats` times, print one JSON line.

def _child(args) -> int:
    from beam_jobs import datastore
    from bench import variants
    target = datastore.Target(os.environ['DATASTORE_PROJECT_ID'], args.namespace)
    runner_args = args.runner_args.split()
    run = {
        'beam_jobs': lambda: variants.beam_jobs_datastore(
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
    for _ in range(args.repeats):
        start = time.perf_counter()
        lines = run()
        times.append(time.perf_counter() - start)
    print(json.dumps({'times': times, 'lines': lines, 'hwm': _own_hwm()}))
    return 0


def _own_hwm() -> int:
    """This process's RSS high-water mark (VmHWM), in bytes."""
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    return 0


# The parent: processes, memory and CPU.

def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir('/proc'):
        if name.isdigit():
            try:
                with open(f'/proc/{name}/stat') as stat:
                    ppid = int(stat.read().rsplit(')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _rss(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f'/proc/{pid}/statm') as statm:
                total += int(statm.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            pass
    return total


def _cpu_secs(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f'/proc/{pid}/stat') as stat:
                fields = stat.read().rsplit(')', 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / _TICKS


def _run_child(variant: str, args, env: dict, jvm_group: Optional[int]) -> dict:
    command = [sys.executable, '-m', 'bench.run', '--child', variant,
               '--namespace', args.namespace,
               '--splits', str(args.splits), '--items', str(args.items),
               '--repeats', str(args.memory_repeats if variant in MEMORY_VARIANTS
                                else args.repeats),
               '--runner-args', args.runner_args]
    jvm = _group_pids(jvm_group)
    jvm_before = _cpu_secs(jvm)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.wait(0.05):
            peak[0] = max(peak[0], _rss(_tree(process.pid)))
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
    result['python_cpu'] = (usage.ru_utime + usage.ru_stime) / repeats
    result['jvm_cpu'] = (_cpu_secs(jvm) - jvm_before) / repeats
    result['median'] = statistics.median(result['times'])
    return result


def _group_pids(group: Optional[int]) -> list[int]:
    if group is None:
        return []
    pids = []
    for name in os.listdir('/proc'):
        if name.isdigit():
            try:
                if os.getpgid(int(name)) == group:
                    pids.append(int(name))
            except OSError:
                pass
    return pids


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


def _parent(args) -> int:
    from beam_jobs import datastore
    from beam_jobs import emulator as emulator_lib
    from beam_jobs import options as options_lib
    from pipelines import sample_data
    from bench import variants

    print(f'Machine: {_machine()}')
    print(f'Local runner: {options_lib.LOCAL_RUNNER}, mode '
          f'{options_lib.LOCAL_RUNNING_MODE}, {options_lib.LOCAL_NUM_WORKERS} '
          f'worker(s); extra runner args: {args.runner_args or "none"}; '
          f'read splits: {args.splits}; repeats: {args.repeats}')
    running = emulator_lib.start()
    try:
        env = dict(os.environ, **running.env())
        env.pop(datastore.NAMESPACE_ENV, None)
        os.environ.update(running.env())
        target = datastore.Target(running.project, args.namespace)
        start = time.perf_counter()
        sample_data.load(args.entities, target)
        print(f'Loaded {args.entities:,} explorations in '
              f'{time.perf_counter() - start:.1f} s.', flush=True)
        # The emulator's JVM compiles and collects garbage after the load;
        # one untimed scan keeps that out of the first variant's numbers.
        variants.plain_scan(target, limit=min(args.entities, 20000))
        results = {}
        variants_to_run = args.variants.split(',') if args.variants else (
            DATASTORE_VARIANTS + (MEMORY_VARIANTS if args.items else ()))
        for variant in variants_to_run:
            results[variant] = _run_child(variant, args, env,
                                          running.process_group)
            print(f'  {variant}: {results[variant]["median"]:.2f} s '
                  f'(runs {", ".join(f"{t:.2f}" for t in results[variant]["times"])})',
                  flush=True)
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
        running.stop()
    return 0


def _print_table(args, results, empty, shuffle) -> None:
    names = {
        'beam_jobs': '1. beam-jobs RunJob',
        'hand_beam': '2. hand-written Beam',
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

    def ratio(a, b):
        if a in results and b in results:
            print(f'- {names[a]} / {names[b]}: '
                  f'{results[a]["median"] / results[b]["median"]:.2f}x')
    ratio('beam_jobs', 'hand_beam')
    ratio('beam_jobs', 'plain_scan')
    ratio('beam_jobs_mem', 'hand_beam_mem')
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
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--memory-repeats', type=int, default=1,
                        help='repeats of the in-memory path')
    parser.add_argument('--items', type=int, default=1_000_000,
                        help='items of the in-memory path (0 skips it)')
    parser.add_argument('--splits', type=int, default=None,
                        help='key-range splits of each read (default: '
                        "beam-jobs' DEFAULT_SHARD_COUNT)")
    parser.add_argument('--runner-args', default='',
                        help='extra Beam flags for every Beam variant')
    parser.add_argument('--variants', default='',
                        help='comma-separated subset to run (skips the rest)')
    parser.add_argument('--namespace', default=NAMESPACE)
    parser.add_argument('--child', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.splits is None:
        from beam_jobs.transforms import DEFAULT_SHARD_COUNT
        args.splits = DEFAULT_SHARD_COUNT
    return _child(args) if args.child else _parent(args)


if __name__ == '__main__':
    sys.exit(main())
