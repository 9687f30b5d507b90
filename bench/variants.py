"""The things the benchmark times, one function per variant.

Each variant does the same work: read every exploration (or make every
in-memory item), run the job's `map`, group the pairs by key, run `reduce`
and count the output lines. Only how it gets there differs: through
beam-jobs, through a hand-written Beam pipeline with the same settings, or
through a plain Python loop.
"""

from __future__ import annotations

import collections
import json
import os
from typing import Callable, Iterator, Optional, Sequence

import apache_beam as beam
from apache_beam.io.gcp.datastore.v1new import datastoreio
from apache_beam.io.gcp.datastore.v1new import types as beam_types
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from google.auth import credentials as auth_credentials
from google.cloud import datastore as ds_client
from google.cloud import ndb

from beam_jobs import MapReduce, RunJob, jobs
from beam_jobs import target as target_lib
from beam_jobs import options as options_lib
from pipelines import exp_jobs_one_off
from pipelines.models import exp_models

AUDIT_JOB = exp_jobs_one_off.InteractionAuditOneOffJob
TOPICS = 1000
SOURCE_SHARDS = 10


# The in-memory path: a count-like job over small models.

class ItemModel(ndb.Model):
    topic = ndb.StringProperty()


class TopicCountJob(jobs.BaseMapReduceOneOffJobManager):
    """How many items per topic: the shape combiners are for."""

    @classmethod
    def entity_classes_to_map_over(cls):
        return [ItemModel]

    @staticmethod
    def map(item):
        yield (item.topic, 1)

    @staticmethod
    def reduce(key, values):
        yield (key, sum(int(value) for value in values))


class CombinedTopicCountJob(TopicCountJob):

    @staticmethod
    def combine(key, values):
        yield sum(int(value) for value in values)


def make_items(shard: int, count: int) -> Iterator[ItemModel]:
    """One shard of the in-memory source; models need no context without keys."""
    for number in range(shard, count, SOURCE_SHARDS):
        yield ItemModel(topic=f'topic-{number % TOPICS}')


def _lines_counter():
    return Metrics.counter('bench', 'lines')


def _count_line(line, counter=[]):  # pylint: disable=dangerous-default-value
    if not counter:
        counter.append(_lines_counter())
    counter[0].inc()


def _run_counting(build: Callable[[beam.Pipeline], beam.PCollection],
                  pipeline_args: Sequence[str]) -> int:
    """Run a pipeline on beam-jobs' local runner settings; its line count."""
    pipeline = beam.Pipeline(options=options_lib.pipeline_options(pipeline_args))
    _ = build(pipeline) | 'Count lines' >> beam.Map(_count_line)
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_name('lines'))
    return sum(c.committed or c.attempted or 0 for c in counters['counters'])


def output_line(value) -> str:
    return str(json.loads(json.dumps(value)))


# 1. beam-jobs.

def beam_jobs_datastore(target: target_lib.Target, splits: int,
                        pipeline_args: Sequence[str]) -> int:
    return _run_counting(
        lambda p: p | RunJob(AUDIT_JOB, shard_count=splits,
                             project=target.project, namespace=target.namespace),
        pipeline_args)


def beam_jobs_enqueue(target: target_lib.Target) -> int:
    """The audit as legacy code runs it: `create_new()`, then `enqueue()`
    (which the audit overrides to ask for 64 shards), the run record and the
    stored output included."""
    os.environ[target_lib.NAMESPACE_ENV] = target.namespace or ''
    job_id = AUDIT_JOB.create_new()
    AUDIT_JOB.enqueue(job_id)
    if AUDIT_JOB.get_status_code(job_id) != jobs.STATUS_CODE_COMPLETED:
        raise RuntimeError(f'{job_id} did not complete: '
                           f'{AUDIT_JOB.get_error(job_id)}')
    return len(AUDIT_JOB.get_output(job_id))


def beam_jobs_memory(count: int, pipeline_args: Sequence[str],
                     job: type = TopicCountJob) -> int:
    return _run_counting(
        lambda p: (p | beam.Create(range(SOURCE_SHARDS))
                   | beam.FlatMap(make_items, count)
                   | MapReduce(job, project='bench')),
        pipeline_args)


# 2. Hand-written Beam: read → FlatMap → GroupByKey → FlatMap.

class _MapEntities:
    """What a user would write: entity → ndb model → job.map, as str pairs."""

    def __init__(self, target: target_lib.Target):
        self._target = target
        self._client = None

    def __call__(self, entity: beam_types.Entity):
        if self._client is None:
            self._client = ndb.Client(
                project=self._target.project, namespace=self._target.namespace,
                credentials=auth_credentials.AnonymousCredentials())
        with self._client.context():
            model = ndb.model._entity_from_ds_entity(  # pylint: disable=protected-access
                entity.to_client_entity(),
                model_class=exp_models.ExplorationModel)
            pairs = [(str(k), str(v)) for k, v in AUDIT_JOB.map(model) or ()]
        return pairs

    def __getstate__(self):
        return {'_target': self._target, '_client': None}


def _reduce(job: type):
    def reduce(key_values):
        key, values = key_values
        return [output_line(v) for v in job.reduce(key, list(values)) or ()]
    return reduce


def hand_beam_datastore(target: target_lib.Target, splits: int,
                        pipeline_args: Sequence[str]) -> int:
    query = beam_types.Query(kind='ExplorationModel', project=target.project,
                             namespace=target.namespace)
    return _run_counting(
        lambda p: (p | datastoreio.ReadFromDatastore(query, num_splits=splits)
                   | 'Map' >> beam.FlatMap(_MapEntities(target))
                   | beam.GroupByKey()
                   | 'Reduce' >> beam.FlatMap(_reduce(AUDIT_JOB))),
        pipeline_args)


def _audit_pairs(entity: beam_types.Entity) -> list:
    """The audit's map as a Beam user writes it on raw entities: no ndb,
    `json.loads` of the states."""
    properties = entity.properties
    if properties.get('deleted'):
        return []
    exploration_id = entity.key.path_elements[-1]
    return [(state['interaction']['id'], '%s %s' % (exploration_id, name))
            for name, state in json.loads(properties['states']).items()]


def _format_group(key_values) -> str:
    key, values = key_values
    return output_line((key, list(values)))


def hand_beam_raw(target: target_lib.Target, splits: int,
                  pipeline_args: Sequence[str]) -> int:
    query = beam_types.Query(kind='ExplorationModel', project=target.project,
                             namespace=target.namespace)
    return _run_counting(
        lambda p: (p | datastoreio.ReadFromDatastore(query, num_splits=splits)
                   | 'Map' >> beam.FlatMap(_audit_pairs)
                   | beam.GroupByKey()
                   | 'Format' >> beam.Map(_format_group)),
        pipeline_args)


def _map_items(item):
    return [(str(k), str(v)) for k, v in TopicCountJob.map(item)]


def hand_beam_memory(count: int, pipeline_args: Sequence[str]) -> int:
    return _run_counting(
        lambda p: (p | beam.Create(range(SOURCE_SHARDS))
                   | beam.FlatMap(make_items, count)
                   | 'Map' >> beam.FlatMap(_map_items)
                   | beam.GroupByKey()
                   | 'Reduce' >> beam.FlatMap(_reduce(TopicCountJob))),
        pipeline_args)


# 3. Plain Python: one sequential reader, a dict as the group-by.

def _group_and_reduce(job: type, pairs) -> int:
    groups = collections.defaultdict(list)
    for key, value in pairs:
        groups[key].append(value)
    return sum(len([output_line(v) for v in job.reduce(key, values) or ()])
               for key, values in groups.items())


def plain_scan(target: target_lib.Target, limit: Optional[int] = None) -> int:
    client = ds_client.Client(project=target.project, namespace=target.namespace)
    ndb_client = ndb.Client(project=target.project, namespace=target.namespace,
                            credentials=auth_credentials.AnonymousCredentials())

    def pairs():
        # One context for the whole scan: the cheapest a hand-written loop gets.
        with ndb_client.context():
            for entity in client.query(kind='ExplorationModel').fetch(limit=limit):
                model = ndb.model._entity_from_ds_entity(  # pylint: disable=protected-access
                    entity, model_class=exp_models.ExplorationModel)
                for key, value in AUDIT_JOB.map(model) or ():
                    yield str(key), str(value)
    return _group_and_reduce(AUDIT_JOB, pairs())


def plain_memory(count: int) -> int:
    def pairs():
        for shard in range(SOURCE_SHARDS):
            for item in make_items(shard, count):
                yield from _map_items(item)
    return _group_and_reduce(TopicCountJob, pairs())


# Shuffle volume: a count-like job over the sample explorations.

class InteractionCountJob(jobs.BaseMapReduceOneOffJobManager):
    """How many live states use each interaction."""

    @classmethod
    def entity_classes_to_map_over(cls):
        return [exp_models.ExplorationModel]

    @staticmethod
    def map(item):
        if item.deleted:
            return
        for state in item.states.values():
            yield ((state.get('interaction') or {}).get('id'), 1)

    @staticmethod
    def reduce(key, values):
        yield (key, sum(int(value) for value in values))


class CombinedInteractionCountJob(InteractionCountJob):

    @staticmethod
    def combine(key, values):
        yield sum(int(value) for value in values)


def shuffle_volume(job: type, target: target_lib.Target, splits: int,
                   pipeline_args: Sequence[str]) -> dict:
    """Elements and bytes entering the GroupByKey, from Beam's own counts.

    Without combine, the shuffle's input is the job's pairs PCollection. With
    combine, the runner lifts CombinePerKey into Precombine → GroupByKey →
    Merge, and the PCollection it names `pcollection` (the first one it
    makes) is the Precombine output: what is actually shuffled.
    """
    from apache_beam.metrics import monitoring_infos as mi
    pipeline = beam.Pipeline(options=options_lib.pipeline_options(pipeline_args))
    _ = pipeline | RunJob(job, shard_count=splits, project=target.project,
                          namespace=target.namespace)
    proto = pipeline.to_runner_api()
    result = pipeline.run()
    result.wait_until_finish()
    shuffle_input = 'pcollection'
    for transform in proto.components.transforms.values():
        if (transform.unique_name.endswith('Steps/Shuffle')
                and transform.spec.urn == 'beam:transform:group_by_key:v1'):
            shuffle_input = list(transform.inputs.values())[0]
    elements, mean_bytes = 0, 0.0
    for info in result.monitoring_infos():
        if info.labels.get('PCOLLECTION') != shuffle_input:
            continue
        value = mi.extract_metric_result_map_value(info)
        if info.urn == mi.ELEMENT_COUNT_URN:
            elements += value
        elif info.urn == mi.SAMPLED_BYTE_SIZE_URN and value.count:
            mean_bytes = value.sum / value.count
    return {'elements': elements, 'bytes': int(elements * mean_bytes)}
