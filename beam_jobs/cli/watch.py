"""Watching a run in the terminal: `status --watch`, `run --wait`, `rehearse`.

A local run shows its progress while it runs in the same command; any other
run is followed as every surface follows one (lifecycle/follow.py), and
shown here as it goes: the same bar, the same lines.
"""

from __future__ import annotations

import sys
from typing import Optional

from beam_jobs.cli.progress_bar import TerminalBar
from beam_jobs.lifecycle import follow
from beam_jobs.lifecycle import run_text
from beam_jobs.records import runs


def follow_to_end(store: runs.RunStore, record: runs.RunRecord,
                  every: Optional[float] = None) -> runs.RunRecord:
    """Follow a run until it ends, showing its progress and stages on stderr;
    the record as it ended (or as it was, if Ctrl-C stopped the watching)."""
    bar = TerminalBar()
    shown = None
    try:
        for record in follow.until_end(store, record, every):
            if not record.is_terminal:
                shown = _show(record, bar, shown)
    except KeyboardInterrupt:
        print(f'\nStopped watching; the run goes on (`beam-jobs status '
              f'{record.run_id} --watch` to watch again).', file=sys.stderr)
    finally:
        bar.close()
    return record


def _show(record: runs.RunRecord, bar: TerminalBar, shown: Optional[str]) -> Optional[str]:
    """The bar, and on a log (not a terminal) the line when it changed; the
    line shown last."""
    if record.progress and record.progress.get('total') is not None:
        bar(record.progress)
    line = ' · '.join(part for part in (
        record.status, run_text.stages_text(record.dataflow.stages),
        record.dataflow.follow_error) if part)
    if line != shown and not sys.stderr.isatty():
        print(f'watching {record.run_id}: {line}', file=sys.stderr, flush=True)
        return line
    return shown
