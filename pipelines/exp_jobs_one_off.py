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

    COORDINATOR_NOTES = """\
**Before production.** Rehearse over a fresh export of production, with the
validation job and the expected output:

    beam-jobs rehearse ExplorationContentMigrationOneOffJob --export PATH \\
        --verify ExplorationStatesSchemaValidationOneOffJob \\
        --expect pipelines/expected/exploration_content_migration.txt

**Expected output.** `['ALREADY_MIGRATED', N]` and `['MIGRATED', M]`, then
`WRITES: put M ExplorationModel`; on a rerun only `ALREADY_MIGRATED`. An
`ERROR in map for ExplorationModel/ID: ValueError: state … has content of
type …` line names an exploration whose content is not HTML: it is not
migrated, and the validation job lists it.

**Verifying the outcome.** Run `ExplorationStatesSchemaValidationOneOffJob`
afterwards: its output must be `['VALID', N]` with no `ERROR` line.

**What to do with the output.** Nothing for the counts. Send every failed ID
to the explorations' authors; `ExplorationContentRepairOneOffJob` resets
unreadable content to an empty paragraph so the migration can finish.

**If a run fails midway.** Each exploration is written whole, with its own
key. Read the run's error (`beam-jobs status RUN_ID`) and its log, fix the
cause, then finish it: `beam-jobs run ExplorationContentMigrationOneOffJob
--retry-failed RUN_ID` maps only what it had not written (or, after a run that
completed with failed items, only those). To take the migration back instead:
`beam-jobs revert RUN_ID --dry-run`, then without `--dry-run`; explorations
edited since are named as conflicts and left as they are.
"""

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


class ExplorationStatesSchemaValidationOneOffJob(jobs.BaseMapReduceOneOffJobManager):
    """Validates that every live exploration is on states schema v2 and every
    state's content is a content dict (`{'content_id', 'html'}`).

    Output: `['VALID', N]`, and for each problem found
    `['ERROR: <problem>', [exploration ids]]`: a rehearsal's verify step
    passes when there is no ERROR line.
    """

    CURRENT_VERSION = 2

    @classmethod
    def entity_classes_to_map_over(cls):
        return [exp_models.ExplorationModel]

    @staticmethod
    def map(item):
        if item.deleted:
            return
        problems = set()
        job = ExplorationStatesSchemaValidationOneOffJob
        if item.states_schema_version != job.CURRENT_VERSION:
            problems.add('states schema is v%s, not v%s' % (
                item.states_schema_version, job.CURRENT_VERSION))
        for state in item.states.values():
            content = state.get('content')
            if not isinstance(content, dict) or 'html' not in content:
                problems.add('a state\'s content is not a content dict')
        for problem in sorted(problems):
            yield ('ERROR: %s' % problem, item.id)
        if not problems:
            yield ('VALID', 1)

    @staticmethod
    def reduce(key, values):
        if key.startswith('ERROR'):
            yield (key, sorted(values))
        else:
            yield (key, len(values))


class ExplorationContentRepairOneOffJob(jobs.BaseMapReduceOneOffJobManager):
    """Repairs states schema v1 explorations whose state content is not an
    HTML string (the migration cannot read them): such content is replaced
    by an empty paragraph, so the migration can go on.

    Output: `['REPAIRED', [ids]]` (send these to their authors), and
    `['UNCHANGED', N]`. Safe to rerun: repaired explorations are unchanged.
    """

    EMPTY_HTML = '<p></p>'

    @classmethod
    def entity_classes_to_map_over(cls):
        return [exp_models.ExplorationModel]

    @staticmethod
    def map(item):
        if item.deleted or item.states_schema_version >= 2:
            return
        repaired = False
        for state in item.states.values():
            if not isinstance(state.get('content'), str):
                state['content'] = ExplorationContentRepairOneOffJob.EMPTY_HTML
                repaired = True
        if not repaired:
            yield ('UNCHANGED', 1)
            return
        item.update_timestamps()
        yield jobs.Put(item)
        yield ('REPAIRED', item.id)

    @staticmethod
    def reduce(key, values):
        yield (key, sorted(values) if key == 'REPAIRED' else len(values))
