"""Watching a run from the command line: `status --watch`, `run --wait`.

A local run shows its progress while it runs in the same command; a Dataflow
run is followed from its record, which its backend brings up to date
(lifecycle/dataflow.py: at most once per `follow_interval` whoever asks).
The same bar, the same lines.
"""

from __future__ import annotations

import sys
import time
from typing import Optional

from beam_jobs import progress
from beam_jobs.cli.progress_bar import TerminalBar
from beam_jobs.lifecycle import dataflow
from beam_jobs.lifecycle import dataflow_watch
from beam_jobs.lifecycle import launcher
from beam_jobs.records import runs


def follow_to_end(store: runs.RunStore, record: runs.RunRecord,
                  every: Optional[float] = None) -> runs.RunRecord:
    """Follow a run until it ends, showing its progress and stages on stderr;
    the record as it ended (or as it was, if Ctrl-C stopped the watching)."""
    every = dataflow.follow_every_secs() if every is None else every
    bar = TerminalBar()
    shown = None
    try:
        while not record.is_terminal:
            if record.progress and record.progress.get('total') is not None:
                bar(record.progress)
            line = ' · '.join(part for part in (
                record.status, stages_line(record), record.follow_error) if part)
            if line != shown and not sys.stderr.isatty():
                print(f'watching {record.run_id}: {line}', file=sys.stderr, flush=True)
                shown = line
            time.sleep(max(0.2, every))
            record = launcher.follow(store, store.get(record.run_id))
    except KeyboardInterrupt:
        print(f'\nStopped watching; the run goes on (`beam-jobs status '
              f'{record.run_id} --watch` to watch again).', file=sys.stderr)
    finally:
        bar.close()
    return record


def progress_line(record: runs.RunRecord) -> Optional[str]:
    if not record.progress or record.is_terminal and not record.dataflow_job_id:
        return None
    return progress.describe(record.progress)


def stages_line(record: runs.RunRecord) -> Optional[str]:
    return dataflow_watch.stages_text(record.stages)


def usage_line(record: runs.RunRecord) -> Optional[str]:
    return dataflow_watch.usage_text(record.usage)


def failure_line(failure: dict) -> str:
    return dataflow_watch.failure_text(failure)
