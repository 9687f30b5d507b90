"""`beam-jobs estimate`: what a Dataflow run of a job would cost and take,
without submitting anything."""

from __future__ import annotations

from typing import Sequence

from apache_beam.options.pipeline_options import GoogleCloudOptions

from beam_jobs import job_class as job_class_lib
from beam_jobs import options as options_lib
from beam_jobs.cli import common
from beam_jobs.io import sources
from beam_jobs.lifecycle import estimate
from beam_jobs.lifecycle import planning

DATAFLOW = '--runner=DataflowRunner'


def add_parsers(commands, parent) -> None:
    command = commands.add_parser(
        'estimate', parents=[parent],
        help='what a Dataflow run of a job would cost and take (submits nothing)',
        description='Estimate a Dataflow run of JOB over --export PATH (entities '
        'from its metadata) or the Datastore of --project P (entities from its '
        '__Stat_Kind__ statistics): the CPU per entity its last rehearsal '
        'measured (else its last run that did, said so), vCPU hours, wall time '
        'with --max_num_workers workers (default the max_num_workers setting, '
        '20) and the price at list rates in --region (the vcpu_hour_usd setting '
        'overrides the table). Other flags are Beam\'s Dataflow flags, as for '
        '`run`. Without a measurement it prints a warning, not a figure.')
    command.add_argument('job')
    command.add_argument('--export', default=None, metavar='PATH',
                         help='the export the run would read')
    command.set_defaults(handler=cmd_estimate, own_flags=common.own_flags(command),
                         takes_pipeline_flags=True)


def cmd_estimate(args, pipeline_args: Sequence[str]) -> int:
    job = common.registry(args).get(args.job)
    models = job_class_lib.validate(job)
    # As on Dataflow: the configured region, machine type and worker cap,
    # whatever runner the settings name for other commands.
    given = [arg for arg in pipeline_args if not arg.startswith('--runner')]
    pipeline_options = options_lib.pipeline_options(
        [DATAFLOW, *given], args.own_flags, 'beam-jobs estimate')
    cloud = pipeline_options.view_as(GoogleCloudOptions)
    if not args.export and not cloud.project:
        raise common.UsageError('Name what the run would read: --export PATH, or '
                                '--project P for its Datastore.')
    planning.guardrails(pipeline_options)     # a worker cap that caps nothing: exit 2
    namespace = planning.run_namespace(args.namespace)
    source = sources.for_run(args.export)
    source.check(models, namespace)
    found = planning.estimate_for(job, models, source, pipeline_options, namespace)
    for line in estimate.lines(found.as_record()):
        print(line)
    return common.EXIT_OK
