"""Which Datastore keeps which records: the one place that decides it.

Two kinds of records, two answers, for every surface alike:

    run records       a local run's: the emulator DATASTORE_EMULATOR_HOST
                      names, else the project's own (started, or shared with
                      other commands); a Dataflow run's: the team's shared
                      records (`records_project`) when configured, else its
                      project's Datastore
    sign-off records  rehearsals, requests, approvals, the gate's audit
                      trail: the shared records when configured, else beside
                      this machine's (or the console's) run records

A Dataflow run never starts an emulator: its records live in the Datastore
of its project (or of the emulator DATASTORE_EMULATOR_HOST names, as in
tests). Planning, the gate, the CLI, the console and rehearsals ask here;
none decides it again.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol, Sequence

from apache_beam.options.pipeline_options import GoogleCloudOptions
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs import emulator
from beam_jobs import options as options_lib
from beam_jobs import target as target_lib
from beam_jobs.records import runs

# How many of a job's newest runs the gate looks through.
RUNS_LOOKED_AT = 200


def runs_target(pipeline_options: PipelineOptions,
                namespace: Optional[str] = None) -> target_lib.Target:
    """Where runs with these options keep their records."""
    if options_lib.is_dataflow(pipeline_options):
        return dataflow_runs_target(
            pipeline_options.view_as(GoogleCloudOptions).project, namespace)
    return local_target(namespace)


def dataflow_runs_target(project: Optional[str],
                         namespace: Optional[str] = None) -> target_lib.Target:
    """Where Dataflow runs against `project` keep their records: the team's
    shared records when configured (where everyone looks), else that
    project's Datastore."""
    return target_lib.shared_records() or target_lib.Target.from_environment(
        project, namespace)


def local_target(namespace: Optional[str] = None) -> target_lib.Target:
    """This machine's records: the emulator DATASTORE_EMULATOR_HOST names,
    else the project's own, started if it is not running."""
    emulator.ensure_environment()
    return target_lib.Target.from_environment(None, namespace)


def signoff_target(namespace: Optional[str] = None) -> target_lib.Target:
    """Where the team's sign-off lives (rehearsal records, requests,
    approvals, the gate's audit trail): the shared records when configured
    (`records_project`), else with this machine's local records."""
    return target_lib.shared_records() or local_target(namespace)


def signoff_target_beside(run_records: target_lib.Target) -> target_lib.Target:
    """The sign-off records of a reader that already has its run records
    (the console): the shared records when configured, else beside them."""
    return target_lib.shared_records() or run_records


def run_store(pipeline_options: PipelineOptions,
              namespace: Optional[str] = None) -> runs.RunStore:
    """The run records of runs with these options."""
    return runs.RunStore(runs_target(pipeline_options, namespace))


class Planned(Protocol):
    """What this module reads of a plan (planning.RunPlan, a layer above)."""

    @property
    def pipeline_options(self) -> PipelineOptions: ...

    @property
    def namespace(self) -> Optional[str]: ...


def for_plan(plan: Planned) -> runs.RunStore:
    """The run records of a planned run: where its record is made."""
    return run_store(plan.pipeline_options, plan.namespace)


def configured_run_store(pipeline_args: Sequence[str] = (),
                         namespace: Optional[str] = None) -> runs.RunStore:
    """The run records that commands reading runs use: those of the
    configured runner (`runner`, `project` settings) and these flags."""
    return run_store(options_lib.pipeline_options(pipeline_args), namespace)


# `runs_of(job_name)`: a job's newest run records (gate.RunsOf).
RunsOf = Callable[[str], list[runs.RunRecord]]


def production_runs(pipeline_options: PipelineOptions,
                    namespace: Optional[str] = None) -> RunsOf:
    """`runs_of(job_name)`: the newest runs of a job where runs with these
    options are recorded (the gate's question: has the job it follows run?)."""
    def runs_of(job_name: str) -> list[runs.RunRecord]:
        return run_store(pipeline_options, namespace).recent(RUNS_LOOKED_AT, job_name)
    return runs_of


def production_runs_of(project: Optional[str],
                       namespace: Optional[str] = None) -> RunsOf:
    """`runs_of(job_name)` where Dataflow runs against `project` are recorded."""
    def runs_of(job_name: str) -> list[runs.RunRecord]:
        return runs.RunStore(dataflow_runs_target(project, namespace)).recent(
            RUNS_LOOKED_AT, job_name)
    return runs_of
