"""Where the seconds of one `Job.enqueue` of the guide's job go.

    python -m bench.profile_guide [--jvm-group PGID] [--no-floor]

Run inside bench/guide.py's environment (its emulator and namespace; `make
bench` runs it after each size's rounds). One run of
`InteractionAuditOneOffJob` as legacy code runs it (`create_new`, `enqueue`,
`get_output`), in this process, with:

- **the main thread sampled** every `SAMPLE_SECS` (its Python stack, from a
  thread of this script), each sample put in the first phase whose frame is
  on the stack, innermost first (`PHASES`). The main thread is the one that
  runs the pipeline (the local runner's one in-memory worker), so its
  samples are the run's timeline: record, pipeline construction, the
  splitter's query, waiting for the emulator, decode, the job's map, packing,
  Beam's runner (bundles, coders, the shuffle), reduce, formatting the
  output, the report's truncation, storing it, reading it back;
- **CPU measured apart**: the emulator's JVM (/proc/PID/stat of its process
  group, before and after), this process, and each of its threads
  (/proc/self/task/TID/stat, sampled while they live: the read's threads
  end before the run does);
- **the read's floor**: afterwards, the same key ranges read by the same
  number of threads as the run's read (datastore_read's split and merge), pages
  dropped: what the emulator alone needs to serve the kind that way.

The sampler costs the run a little (its thread takes the GIL 1/SAMPLE_SECS
times a second): the profiled run is a few percent slower than an unprofiled
one.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import os
import re
import sys
import threading
import time
from typing import Optional, Sequence

from bench import measure

SAMPLE_SECS = 0.005
# What the guide's job asks `enqueue` for (its own override).
SHARD_COUNT = 64
# (phase, file part, function names or None for any): a sample is in the
# first phase with a matching frame anywhere on the main thread's stack.
PHASES = (
    ('read the output back', 'beam_jobs/jobs.py', ('BaseMapReduceOneOffJobManager.get_output',)),
    ('store the output', 'beam_jobs/compile/store_output.py', ('_WriteReportFn.process',)),
    ('truncate (collapse and cap the report)', 'beam_jobs/output_format.py',
     ('Tally.add', 'Tally._trim', 'Tally.merge', 'Tally.report', 'collapse')),
    ('format the output lines', 'beam_jobs/output_format.py', ('output_line',)),
    ('reduce', 'beam_jobs/compile/steps.py', ('_ReduceFn.process', '_unpacked')),
    ('pack pairs', 'beam_jobs/compile/steps.py', ('_packed',)),
    ('split (scatter query)', 'beam_jobs/io/datastore_read.py', ('split_ranges',)),
    ('wait for the emulator (read)', 'beam_jobs/io/datastore_read.py', ('_Prefetch.__iter__',)),
    ("map: the job's own code (json, domain)", 'pipelines/',
     ('InteractionAuditOneOffJob.map',)),
    ('decode (protobuf -> model)', 'beam_jobs/lean_models.py', None),
    ("map: the framework's map step", 'beam_jobs/compile/steps.py', None),
    ('pipeline construction', 'beam_jobs/lifecycle/backend.py', ('build_pipeline',)),
    ('Beam runner (bundles, coders, shuffle, its set-up)', 'apache_beam/', None),
    ('record (plan, create, transitions, end)', 'beam_jobs/', None),
)
_READ = 'wait for the emulator (read)'
_RUNNER = 'Beam runner (bundles, coders, shuffle, its set-up)'
_ORDER = [name for name, _, _ in PHASES]
_ORDER[_ORDER.index(_RUNNER):_ORDER.index(_RUNNER) + 1] = [
    _RUNNER + when for when in (': before the read', ': during the read', ': after the read')]
_TICKS = os.sysconf('SC_CLK_TCK')


def _phase(frame) -> str:
    stack = []
    while frame is not None:
        stack.append((frame.f_code.co_filename, frame.f_code.co_qualname))
        frame = frame.f_back
    for name, part, functions in PHASES:
        for filename, function in stack:
            if part in filename and (functions is None or function in functions):
                return name
    return 'other (this script, imports)'


def _thread_cpu() -> dict:
    """CPU seconds of each live thread of this process, by native id."""
    out = {}
    for tid in os.listdir('/proc/self/task'):
        try:
            with open(f'/proc/self/task/{tid}/stat') as stat:
                fields = stat.read().rsplit(')', 1)[1].split()
            out[int(tid)] = (int(fields[11]) + int(fields[12])) / _TICKS
        except (OSError, ValueError, IndexError):
            pass
    return out


class Sampler:
    """The main thread's phase every SAMPLE_SECS; every thread's CPU."""

    def __init__(self):
        self.timeline: list = []
        self.thread_cpu: dict = {}
        self.thread_names: dict = {}
        self._main = threading.main_thread().ident
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name='sampler')
        self.began = time.perf_counter()
        self.cpu_before = _thread_cpu()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *unused):
        self._done.set()
        self._thread.join()

    def phases(self) -> tuple[collections.Counter, dict, dict]:
        """Samples, first and last time of each phase; the runner's own
        work split into before, during and after the read."""
        read = [when for when, phase in self.timeline if phase == _READ]
        samples: collections.Counter = collections.Counter()
        first: dict = {}
        last: dict = {}
        for when, phase in self.timeline:
            if phase == _RUNNER and read:
                phase += (': before the read' if when < read[0] else
                          ': after the read' if when > read[-1] else ': during the read')
            samples[phase] += 1
            first.setdefault(phase, when)
            last[phase] = when
        return samples, first, last

    def _run(self):
        ticks = 0
        while not self._done.wait(SAMPLE_SECS):
            frame = sys._current_frames().get(self._main)  # pylint: disable=protected-access
            if frame is not None:
                phase = _phase(frame)
                now = time.perf_counter() - self.began
                self.timeline.append((now, phase))
            ticks += 1
            if ticks % 20 == 0:
                self._threads()
        self._threads()

    def _threads(self):
        for thread in threading.enumerate():
            if thread.native_id is not None:
                self.thread_names[thread.native_id] = thread.name
        self.thread_cpu.update(_thread_cpu())


def _thread_kind(name: str) -> str:
    if name == 'MainThread':
        return 'main thread (the pipeline)'
    if name.startswith('datastore-read'):
        return 'the read\'s threads (gRPC calls, pages)'
    if name == 'sampler':
        return 'this profiler\'s sampler'
    return 'other threads (gRPC, Beam, progress)'


def _read_floor(target, kinds: Sequence[str], shard_count: int) -> dict:
    """The run's read, pages dropped: each kind split as the run splits it
    (shard_count ranges, adjacent ones merged as the run merges them), read
    on as many threads as the run reads with."""
    from beam_jobs import target as target_lib
    from beam_jobs.io import datastore_read

    def read(key_range):
        client = target_lib.client(target)
        return sum(len(page) for page in datastore_read.read_pages(client, key_range))
    began = time.perf_counter()
    entities, queries, threads = 0, 0, datastore_read.READERS
    for kind in kinds:
        query = datastore_read.KindQuery(kind, target.project, target.namespace)
        ranges = datastore_read.split_ranges(
            query, shard_count, datastore_read.EMULATOR_SCATTER_KEYS)
        ranges = datastore_read.merge_adjacent(ranges, datastore_read.QUERIES_PER_RUN)
        queries += len(ranges)
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            entities += sum(pool.map(read, ranges))
    return {'seconds': time.perf_counter() - began, 'ranges': queries,
            'threads': threads, 'entities': entities}


def profile(jvm_group: Optional[int], floor: bool = True) -> str:
    from beam_jobs import target as target_lib
    from pipelines import exp_jobs_one_off
    job = exp_jobs_one_off.InteractionAuditOneOffJob
    target = target_lib.Target.from_environment()
    jvm = measure.group_pids(jvm_group)
    jvm_before, cpu_before = measure.cpu_secs(jvm), time.process_time()
    with Sampler() as sampler:
        job_id = job.create_new()
        job.enqueue(job_id)
        lines = job.get_output(job_id)
    wall = time.perf_counter() - sampler.began
    jvm_cpu, py_cpu = measure.cpu_secs(jvm) - jvm_before, time.process_time() - cpu_before
    if job.get_status_code(job_id) != 'completed':
        raise RuntimeError(job.get_error(job_id))
    samples, first, last = sampler.phases()
    total = sum(samples.values())
    out = [f'One Job.enqueue of InteractionAuditOneOffJob over {target.namespace}: '
           f'{wall:.2f} s wall, {len(lines)} stored lines '
           f'({sum(len(line) for line in lines):,} characters)', '',
           '| where the main thread was | s | share | from s | to s |',
           '|---|---|---|---|---|']
    names = sorted(samples, key=lambda name: (
        _ORDER.index(name) if name in _ORDER else len(_ORDER)))
    for name in names:
        seconds = wall * samples[name] / total
        out.append(f'| {name} | {seconds:.2f} | {samples[name] / total:.0%} | '
                   f'{first[name]:.2f} | {last[name]:.2f} |')
    by_kind: dict = collections.Counter()
    for tid, seconds in sampler.thread_cpu.items():
        seconds -= sampler.cpu_before.get(tid, 0.0)
        by_kind[_thread_kind(sampler.thread_names.get(tid, ''))] += seconds
    out += ['', '| CPU during the run | s |', '|---|---|',
            f'| the emulator\'s JVM | {jvm_cpu:.2f} |',
            f'| Python, this process | {py_cpu:.2f} |']
    out += [f'| — {kind} | {seconds:.2f} |' for kind, seconds in sorted(
        by_kind.items(), key=lambda item: -item[1])]
    out.append(f'| both, over the run\'s wall time | {(jvm_cpu + py_cpu) / wall:.2f} '
               f'cores of {os.cpu_count()} |')
    if floor:
        from beam_jobs import entities
        kinds = [entities.kind_of(model) for model in job.entity_classes_to_map_over()]
        jvm_before = measure.cpu_secs(jvm)
        read = _read_floor(target, kinds, SHARD_COUNT)
        read['jvm'] = measure.cpu_secs(jvm) - jvm_before
        wait = wall * samples.get(_READ, 0) / total
        out += ['', f'Read floor: the run\'s read plan (split, then {read["ranges"]} '
                f'queries on up to {read["threads"]} threads), pages dropped: '
                f'{read["seconds"]:.2f} s (JVM CPU {read["jvm"]:.2f} s) '
                f'for {read["entities"]:,} entities. The run took {wall:.2f} s: '
                f'{wall / read["seconds"]:.2f}x the floor '
                f'(the main thread waited on the read {wait:.2f} s).']
    return '\n'.join(out)


_FLOOR = re.compile(r'The run took ([\d.]+) s: ([\d.]+)x the floor')


def summary_line(report: str) -> str:
    """One line for bench/guide.py's summary, from a printed profile."""
    found = _FLOOR.search(report)
    return (f'  profiled run: {found.group(1)} s, {found.group(2)}x the read floor'
            if found else '  profiled run: no floor measured')


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--jvm-group', type=int, default=None,
                        help="the emulator's process group (its JVM's CPU is counted)")
    parser.add_argument('--no-floor', action='store_true')
    args = parser.parse_args(argv)
    print(profile(args.jvm_group, floor=not args.no_floor))
    return 0


if __name__ == '__main__':
    sys.exit(main())
