"""A registry of the test jobs, as a project's jobs_registry module is."""

from beam_jobs import JobRegistry
from tests import job_fixtures as fx

REGISTRY = JobRegistry([fx.TopicCountJob, fx.ParamJob, fx.FailingMapJob,
                        fx.SlowJob, fx.TopicTagMigrationJob, fx.HookedJob,
                        fx.NoteAuditJob, fx.NoteTextMigrationJob])
