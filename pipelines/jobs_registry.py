"""The jobs this project can run, by name (was ONE_OFF_JOB_MANAGERS)."""

from beam_jobs import JobRegistry
from pipelines import exp_jobs_one_off

REGISTRY = JobRegistry([
    exp_jobs_one_off.InteractionAuditOneOffJob,
    exp_jobs_one_off.ExplorationContentMigrationOneOffJob,
    exp_jobs_one_off.ExplorationStatesSchemaValidationOneOffJob,
    exp_jobs_one_off.ExplorationContentRepairOneOffJob,
])
