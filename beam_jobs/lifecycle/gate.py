"""The production gate: no job changes production data unrehearsed.

A run in production (the Dataflow runner, or any Datastore that is not an
emulator) of a job whose code version has no approved rehearsal is refused
before anything is submitted. Runs that cannot change data are let through:
dry runs, and runs over an export (which write to no Datastore). Local runs
on the emulator are never gated. `--skip-rehearsal --user NAME --reason TEXT`
overrides, and the run record keeps who skipped and why; `require_rehearsal =
false` under [tool.beam-jobs] turns the gate off.

Approvals are looked up where rehearsals are kept: with the local run records
(the Datastore a local run uses), since a rehearsal always runs locally.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Optional

from beam_jobs import config
from beam_jobs import job_class as job_class_lib
from beam_jobs import target as target_lib
from beam_jobs.lifecycle import code_version
from beam_jobs.records.rehearsals import RehearsalStore


class GateError(ValueError):
    """A production run refused for want of an approved rehearsal."""


@dataclasses.dataclass(frozen=True)
class Skip:
    user: str
    reason: str


def required() -> bool:
    value = config.get('require_rehearsal', True)
    if isinstance(value, str):
        return value.strip().lower() not in ('false', '0', 'no', 'off')
    return bool(value)


def is_production(is_dataflow: bool) -> bool:
    """Dataflow, or a real Datastore: with no emulator set, a local run uses
    the project's own emulator unless BEAM_JOBS_REAL_DATASTORE says otherwise
    (emulator.ensure_environment), and that is not production."""
    return is_dataflow or (not target_lib.is_emulator()
                           and bool(os.environ.get('BEAM_JOBS_REAL_DATASTORE')))


def check(job: type, *, is_dataflow: bool, changes_datastore: bool,
          skip: Optional[Skip],
          rehearsals: Callable[[], RehearsalStore]) -> dict:
    """What the run record keeps about the gate; raises GateError to refuse.

    `changes_datastore` is the plan's write mode's answer: only a run whose
    writes reach a Datastore is gated."""
    if not is_production(is_dataflow) or not changes_datastore:
        return {}
    if not required():
        return {'gate': 'off (require_rehearsal = false)'}
    if skip is not None:
        if not skip.user or not skip.reason:
            raise GateError('--skip-rehearsal needs --user NAME and --reason TEXT: '
                            'the run record keeps who skipped the rehearsal and why.')
        return {'gate': 'skipped', 'skipped_by': skip.user, 'reason': skip.reason}
    name = job_class_lib.job_name(job)
    version = code_version.of(job)
    approved = rehearsals().approved_for(name, version['source_sha256'])
    if approved is None:
        raise GateError(
            f'{name} has no approved rehearsal of this code version (sha256 '
            f'{version["source_sha256"][:12]}… of {version["source_file"]}), so it '
            f'may not run in production: rehearse it (`beam-jobs rehearse {name} '
            '--export PATH`), have the rehearsal approved (`beam-jobs approve ID '
            '--user NAME`), or override with --skip-rehearsal --user NAME '
            '--reason TEXT.')
    return {'gate': 'approved', 'rehearsal_id': approved.rehearsal_id,
            'approved_by': [approval['user'] for approval in approved.approvals]}
