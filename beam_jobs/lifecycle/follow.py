"""Following a run: its record brought up to date by its backend, whoever asks.

Every reader that should see a run as it is now calls `current` (one look)
or `until_end` (looks until the run ends): `beam-jobs status`, `runs`,
`status --watch` and `run --wait`, the console's pages and API, a
rehearsal's steps, the legacy `get_status_code` and dashboard helpers. Each
look asks the run's backend, chosen by the runner its record names:

    local.py     a run on this machine: ended `failed` if its process is gone
    dataflow.py  a Dataflow job: `poll` asks the API (dataflow_api.py) and
                 dataflow_fields.py turns the answers into record fields

and ends the record, with the job's hooks, if its run has ended. How those
fields read for people is run_text.py; the terminal's loop is cli/watch.py.
The record store itself only stores.
"""

from __future__ import annotations

import time
from typing import Iterator, Optional

from beam_jobs import options as options_lib
from beam_jobs.lifecycle import dataflow
from beam_jobs.lifecycle.backend import Backend
from beam_jobs.lifecycle.dataflow import DataflowBackend
from beam_jobs.lifecycle.local import LocalBackend
from beam_jobs.records import runs

LOCAL = LocalBackend()
DATAFLOW = DataflowBackend()
# The shortest wait between two looks of `until_end`, whatever it is asked.
MIN_EVERY_SECS = 0.2


def backend_for(runner: Optional[str]) -> Backend:
    """The backend of runs on `runner` (a record's or a plan's runner name)."""
    return DATAFLOW if runner in options_lib.DATAFLOW_RUNNERS else LOCAL


def up_to_date(store: runs.RunStore, record: runs.RunRecord) -> runs.RunRecord:
    """`record` brought up to date by its backend (ended if its run has)."""
    if record.is_terminal:
        return record
    return backend_for(record.runner).follow(store, record)


def current(store: runs.RunStore, run_id: str) -> runs.RunRecord:
    """A run's record as it is now: the one look every surface takes."""
    return up_to_date(store, store.get(run_id))


def until_end(store: runs.RunStore, record: runs.RunRecord,
              every: Optional[float] = None) -> Iterator[runs.RunRecord]:
    """`record`, then the run as it is now every `every` seconds (default
    `follow_interval`) until it has ended: the last record yielded is its
    end, unless the caller stops asking first."""
    every = dataflow.follow_every_secs() if every is None else every
    yield record
    while not record.is_terminal:
        time.sleep(max(MIN_EVERY_SECS, every))
        record = current(store, record.run_id)
        yield record


def recent(store: runs.RunStore, limit: int = 20,
           job_name: Optional[str] = None) -> list[runs.RunRecord]:
    """The newest runs first, each as it is now."""
    return [up_to_date(store, record) for record in store.recent(limit, job_name)]


def unfinished(store: runs.RunStore, job_name: Optional[str] = None,
               limit: Optional[int] = None) -> list[runs.RunRecord]:
    """Runs that are new, queued or started now, newest first (orphans and
    finished Dataflow jobs drop out as they are followed)."""
    followed = [up_to_date(store, record) for record in store.unfinished(job_name, limit)]
    return [record for record in followed if not record.is_terminal]
