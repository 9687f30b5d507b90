"""The release plan: the jobs to run in production, in order, with the gate's verdict now.

Which jobs: every job with a request that is not rejected, or with a
rehearsal that passed, in the team's sign-off records. Their order: a job
after the jobs it follows (a request's `--follows`; a rehearsal over another
rehearsal's after state records its own), else in the order they were first
asked for. For each, `gate.evaluate` says, with the gate's own code, whether
it may run now against the given target, why not, until when its approval
holds and what to do next; and whether it has run there since.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from beam_jobs import target as target_lib
from beam_jobs.lifecycle import gate as gate_lib
from beam_jobs.records import rehearsals as rehearsal_records
from beam_jobs.records import requests as request_records
from beam_jobs.target import Target

RECORDS_LOOKED_AT = 200


@dataclasses.dataclass
class PlannedJob:
    order: int
    job_name: str
    follows: list
    verdict: gate_lib.Verdict
    request_id: Optional[str] = None
    # The newest completed production run of it since its approval, if any.
    ran: Optional[dict] = None

    @property
    def state(self) -> str:
        return 'ran' if self.ran else self.verdict.state


def _in_order(names: list[str], follows: dict[str, list[str]]) -> list[str]:
    """`names` with each after the ones it follows (ties: as given); a cycle
    keeps the given order for the jobs in it."""
    placed: list[str] = []
    visiting: set = set()

    def place(name: str) -> None:
        if name in placed or name in visiting:
            return
        visiting.add(name)
        for before in follows.get(name, []):
            if before in names:
                place(before)
        visiting.discard(name)
        placed.append(name)
    for name in names:
        place(name)
    return placed


def build(target: Target, find_job: Callable[[str], type],
          runs_of: Callable[[str], list], project: Optional[str] = None,
          namespace: Optional[str] = None) -> list[PlannedJob]:
    """The release plan of the sign-off records at `target`, judged for a
    production run against `project` (and `namespace`)."""
    rehearsals = rehearsal_records.RehearsalStore(target)
    requests = [r for r in request_records.RequestStore(target).oldest_first(RECORDS_LOOKED_AT)
                if r.state != request_records.REJECTED]
    passed = [r for r in reversed(rehearsals.recent(RECORDS_LOOKED_AT))
              if r.verdict == rehearsal_records.PASSED]
    names = list(dict.fromkeys([r.job_name for r in requests] + [r.job_name for r in passed]))
    follows: dict[str, list[str]] = {}
    named_by: list[tuple[str, list[str]]] = [(r.job_name, r.follows) for r in requests]
    named_by += [(r.job_name, r.followed_jobs) for r in passed]
    for job_name, named in named_by:
        follows.setdefault(job_name, [])
        follows[job_name] += [n for n in named if n not in follows[job_name]]
    newest_params = {r.job_name: r.params for r in passed}
    newest_request = {r.job_name: r for r in requests}
    planned = []
    for order, name in enumerate(_in_order(names, follows), start=1):
        request = newest_request.get(name)
        params = newest_params.get(name, request.params if request else {})
        try:
            job = find_job(name)
        except LookupError:
            verdict = gate_lib.Verdict(
                name, False, f'{name} is not in this registry: its code is not here, so '
                'the gate cannot fingerprint it.', 'unknown',
                reasons=['its code is not in the registry'],
                next_step='run the plan where the job\'s code is')
        else:
            verdict = gate_lib.evaluate(job, params, rehearsals, runs_of, project, namespace,
                                         target_lib.run_database())
        planned.append(PlannedJob(order, name, follows.get(name, []), verdict,
                                  request.request_id if request else None,
                                  _ran(name, verdict, rehearsals, runs_of, project, namespace)))
    return planned


def _ran(name: str, verdict: gate_lib.Verdict, rehearsals: rehearsal_records.RehearsalStore,
         runs_of: Callable[[str], list], project: Optional[str],
         namespace: Optional[str]) -> Optional[dict]:
    """The run that carried out the approved rehearsal, if one has completed
    against this target since its approval."""
    if not verdict.rehearsal_id:
        return None
    try:
        record = rehearsals.get(verdict.rehearsal_id)
    except LookupError:
        return None
    since = gate_lib.approved_at(record)
    if since is None:
        return None
    for run in runs_of(name):
        if gate_lib.counts_as_run(run, name, since, project, namespace):
            return {'run_id': run.run_id, 'finished_msec': run.finished_msec}
    return None
