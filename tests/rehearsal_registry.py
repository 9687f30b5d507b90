"""The project's jobs and the test jobs together, for rehearsal tests."""

from beam_jobs import JobRegistry
from pipelines import exp_jobs_one_off
from tests import job_fixtures as fx


class BrokenMigrationOneOffJob(exp_jobs_one_off.ExplorationContentMigrationOneOffJob):
    """A migration with a bug: it fails on every seventh exploration."""

    @staticmethod
    def map(item):
        if int(item.key.id().split('-')[1]) % 7 == 0:
            raise ValueError('unsupported state layout')
        yield from exp_jobs_one_off.ExplorationContentMigrationOneOffJob.map(item)


REGISTRY = JobRegistry([
    exp_jobs_one_off.ExplorationContentMigrationOneOffJob,
    exp_jobs_one_off.ExplorationStatesSchemaValidationOneOffJob,
    exp_jobs_one_off.ExplorationContentRepairOneOffJob,
    BrokenMigrationOneOffJob,
    fx.RewriteNotesJob, fx.TopicCountJob, fx.FailingMapJob, fx.NoteAuditJob,
])
