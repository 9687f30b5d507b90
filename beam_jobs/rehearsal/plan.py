"""A rehearsal planned: every check made before anything runs or is recorded.

As for a run (`planning.plan_run`), everything that can be refused is refused
here, and the plans say what each run reads and where its writes go: the job
over the export, its writes to an after state; each verify job, checked now
against the export, later run over that after state. Also here: the jobs a
rehearsal over an after state follows (whose writes it read).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Mapping, Optional, Sequence

from apache_beam.options.pipeline_options import GoogleCloudOptions

from beam_jobs import emulator
from beam_jobs import options as options_lib
from beam_jobs import refusals
from beam_jobs.export import after_state as after_state_lib
from beam_jobs.lifecycle import planning
from beam_jobs.lifecycle import record_stores
from beam_jobs.records import rehearsals as record_lib
from beam_jobs.records import requests as request_records
from beam_jobs.rehearsal import expect as expect_lib
from beam_jobs.rehearsal.state import RehearsalState

REHEARSE_COMMAND = 'beam-jobs rehearse'


class RehearsalError(refusals.Refused):
    """A rehearsal that cannot run as asked: bad input, said in one sentence."""


@dataclasses.dataclass
class RehearsalPlan:
    """A rehearsal that passed every check before it runs."""

    rehearsal_id: str
    job: type
    export: str
    job_plan: planning.RunPlan
    verify_plans: list
    expected_text: Optional[str]
    expect_file: Optional[str]
    pipeline_args: list
    namespace: Optional[str]
    request_id: Optional[str] = None
    # The jobs it must follow in production (`follows` of its record).
    follows: list = dataclasses.field(default_factory=list)

    @property
    def after_dir(self) -> Optional[str]:
        return self.job_plan.write_mode.after_state

    @property
    def state(self) -> RehearsalState:
        """What its record keeps so that any reader can take it on."""
        return RehearsalState(verify=tuple(p.job_name for p in self.verify_plans),
                              expected_text=self.expected_text,
                              expect_file=self.expect_file,
                              pipeline_args=tuple(self.pipeline_args),
                              namespace=self.namespace,
                              base=self.job_plan.source.path,
                              after_dir=self.after_dir)


def default_after_dir(rehearsal_id: str, temp_location: Optional[str] = None) -> str:
    """Under .beam-jobs/rehearsals/ here; on Dataflow, in the bucket of its
    temp_location (gs://BUCKET/rehearsals/ID/after)."""
    if temp_location:
        bucket = temp_location.split('/')[2]
        return f'gs://{bucket}/rehearsals/{rehearsal_id}/after'
    return str(emulator.home_dir() / 'rehearsals' / rehearsal_id / 'after')


def _check_places(export: str, after_dir: Optional[str], on_dataflow: bool) -> None:
    if not export:
        raise RehearsalError('A rehearsal runs over a copy of production data: '
                             'pass --export PATH (see `beam-jobs export`).')
    if on_dataflow:
        for what, path in (('export', export), ('after state', after_dir)):
            if path and not path.startswith('gs://'):
                raise RehearsalError(
                    f'A rehearsal on Dataflow reads and writes Cloud Storage, where its '
                    f'workers are: the {what} {path} is not a gs:// path. Copy the '
                    'export to a bucket (`gsutil -m cp -r`), or rehearse here '
                    'without --runner=DataflowRunner.')
    elif after_dir and '://' not in after_dir and os.path.exists(after_dir) \
            and os.listdir(after_dir):
        raise RehearsalError(f'The after state folder {after_dir} is not empty: '
                             'pass a new folder, or leave --after out.')


def plan(job: type, export: str, params: Optional[Mapping[str, Any]] = None,
         shard_count: Optional[int] = None, verify: Sequence[type] = (),
         expect_file: Optional[str] = None, pipeline_args: Sequence[str] = (),
         after_dir: Optional[str] = None,
         namespace: Optional[str] = None,
         own_flags: Sequence[str] = (),
         request: Optional[request_records.RequestRecord] = None,
         expect_text: Optional[str] = None) -> RehearsalPlan:
    """Check a rehearsal before anything runs. With `request`, the request's
    job is rehearsed as asked (its verify jobs, params and expected output
    come in `verify`, `params` and `expect_text`); it must be open or
    rehearsed, not rejected or approved already."""
    if request is not None and request.state in (request_records.REJECTED,
                                                  request_records.APPROVED):
        raise RehearsalError(f'Request {request.request_id} is {request.state}: '
                             'ask its author for a new request.')
    pipeline_options = options_lib.pipeline_options(pipeline_args, own_flags,
                                                    REHEARSE_COMMAND)
    on_dataflow = options_lib.is_dataflow(pipeline_options)
    _check_places(export, after_dir, on_dataflow)
    rehearsal_id = record_lib.RehearsalStore.new_id(job.__name__)
    temp_location = (pipeline_options.view_as(GoogleCloudOptions).temp_location
                     if on_dataflow else None)
    job_plan = planning.plan_run(
        job, params, shard_count, pipeline_args, export=export, namespace=namespace,
        after_state=after_dir or default_after_dir(rehearsal_id, temp_location),
        own_flags=own_flags, command=REHEARSE_COMMAND)
    # Checked against the export now; each runs over the after state later.
    verify_plans = [planning.plan_run(check, {}, None, pipeline_args, export=export,
                                      namespace=namespace, command=REHEARSE_COMMAND)
                    for check in verify]
    if expect_text is None and expect_file:
        expect_text = expect_lib.read(expect_file)
    if expect_text is not None:
        expect_lib.parse_text(expect_text, expect_file or 'the request')
    follows = followed(job_plan.source, rehearsal_store=lambda: record_lib.RehearsalStore(
        record_stores.signoff_target(namespace)))
    follows += [{'job': name} for name in (request.follows if request else [])
                if name not in {item['job'] for item in follows}]
    return RehearsalPlan(rehearsal_id, job, export, job_plan, verify_plans, expect_text,
                         expect_file, list(pipeline_args), namespace,
                         request.request_id if request else None, follows)


def followed(source, rehearsal_store: Callable[[], record_lib.RehearsalStore]) -> list[dict]:
    """The jobs whose writes a rehearsal over an after state reads, oldest
    first: each after state of the chain names its job and run; the rehearsal
    that run belongs to is looked up among that job's rehearsals."""
    layer = getattr(source, 'after', None)
    chain: list[Any] = []
    while layer is not None:
        chain.insert(0, layer)
        layer = (after_state_lib.read(layer.base)
                 if after_state_lib.is_after_state(layer.base) else None)
    follows = []
    for state in chain:
        if not state.job_name:
            continue
        found = next((r.rehearsal_id for r in rehearsal_store().recent(50, state.job_name)
                      if r.run_id == state.run_id), None)
        follows.append({'job': state.job_name, 'rehearsal_id': found})
    return follows
