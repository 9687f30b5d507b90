"""Measuring a command: wall time, peak memory of its process tree, CPU.

Peak memory is the highest summed RSS of the process tree (runner workers
included), sampled every 50 ms — not `ru_maxrss`, which Linux carries over
from the parent across fork and exec. CPU is the tree's (the children's times once reaped), and,
when given the emulator's process group, the emulator JVM's over the same
time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Iterator, Optional, Sequence

_PAGE = os.sysconf('SC_PAGE_SIZE')
_TICKS = os.sysconf('SC_CLK_TCK')


def process_tree(root: int) -> list[int]:
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


def rss_bytes(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f'/proc/{pid}/statm') as statm:
                total += int(statm.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            pass
    return total


def cpu_secs(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f'/proc/{pid}/stat') as stat:
                fields = stat.read().rsplit(')', 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / _TICKS


def group_pids(group: Optional[int]) -> list[int]:
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


@dataclasses.dataclass
class Measured:
    seconds: float
    peak_bytes: int
    cpu: float
    jvm_cpu: float
    stdout: str
    stderr: str


def measured(command: Sequence[str], env: dict,
             jvm_group: Optional[int] = None,
             ok_codes: Sequence[int] = (0,)) -> Measured:
    """Run `command` to its end; raises RuntimeError if it exits otherwise."""
    jvm_before = cpu_secs(group_pids(jvm_group))
    children_before = _children_cpu()
    start = time.perf_counter()
    process = subprocess.Popen(list(command), env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.wait(0.05):
            peak[0] = max(peak[0], rss_bytes(process_tree(process.pid)))
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if process.returncode not in ok_codes:
        raise RuntimeError(f'{" ".join(command)} failed ({process.returncode}):\n'
                           f'{stderr[-3000:]}')
    return Measured(seconds, peak[0], _children_cpu() - children_before,
                    cpu_secs(group_pids(jvm_group)) - jvm_before, stdout, stderr)


def _children_cpu() -> float:
    """CPU of every child reaped so far, their own waited-for children included."""
    times = os.times()
    return times.children_user + times.children_system


@contextlib.contextmanager
def own_emulator(project: str, prefix: str) -> Iterator[tuple]:
    """An in-memory emulator and a scratch folder for one benchmark, both
    gone afterwards: `(running emulator, folder)`."""
    from beam_jobs import emulator
    work = tempfile.mkdtemp(prefix=prefix)
    running = emulator.start(project=project)
    try:
        yield running, work
    finally:
        running.stop()
        shutil.rmtree(work, ignore_errors=True)
