"""One-off jobs over explorations.

Ported from App Engine MapReduce: compared with the originals only the
imports changed (`from beam_jobs import jobs`).
"""

from beam_jobs import jobs
from pipelines.domain import exp_fetchers
from pipelines.models import exp_models


class InteractionAuditOneOffJob(jobs.BaseMapReduceOneOffJobManager):
    """Job that produces a list of (exploration, state) pairs, grouped by the
    interaction they use.
    """

    @classmethod
    def enqueue(cls, job_id, additional_job_params=None):
        super(InteractionAuditOneOffJob, cls).enqueue(
            job_id, shard_count=64)

    @classmethod
    def entity_classes_to_map_over(cls):
        return [exp_models.ExplorationModel]

    @staticmethod
    def map(item):
        if item.deleted:
            return

        exploration = exp_fetchers.get_exploration_from_model(item)
        for state_name, state in exploration.states.items():
            exp_and_state_key = '%s %s' % (item.id, state_name)
            yield (state.interaction.id, exp_and_state_key)

    @staticmethod
    def reduce(key, values):
        yield (key, values)


class ExplorationContentMigrationOneOffJob(jobs.BaseMapReduceOneOffJobManager):
    """Migrates states schema v1 to v2: each state's `content` changes from a
    bare HTML string to `{'content_id': 'content', 'html': ...}`.

    Success output: how many explorations were migrated and how many already
    were. Failure output: the id of each exploration that could not be
    migrated, and why. Safe to run again: migrated explorations are skipped.
    """

    TARGET_VERSION = 2

    @classmethod
    def entity_classes_to_map_over(cls):
        return [exp_models.ExplorationModel]

    @staticmethod
    def map(item):
        if item.deleted:
            return
        target = ExplorationContentMigrationOneOffJob.TARGET_VERSION
        if item.states_schema_version >= target:
            yield ('ALREADY_MIGRATED', item.id)
            return
        new_states = {}
        for name, state in item.states.items():
            content = state['content']
            if not isinstance(content, str):
                raise ValueError(
                    'state %r has content of type %s, expected an HTML string'
                    % (name, type(content).__name__))
            new_states[name] = dict(
                state, content={'content_id': 'content', 'html': content})
        item.states = new_states
        item.states_schema_version = target
        item.update_timestamps()
        yield jobs.Put(item)
        yield ('MIGRATED', item.id)

    @staticmethod
    def reduce(key, values):
        yield (key, len(values))
