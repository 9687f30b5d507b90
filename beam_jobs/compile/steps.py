"""A job's steps over entities or models: map → stringify → shuffle → reduce.

`JobSteps` is the part of a job every way of running it shares: `RunJob`
puts a source's read in front of it, `MapReduce` a PCollection of models.
Failures are caught per item and become output lines
(output_format.failure_line), the job's writes leave the map step apart from
its pairs, and every line leaves with its place in the report.
"""

from __future__ import annotations

import collections
from typing import Any, Mapping

import apache_beam as beam
from apache_beam.io.gcp.datastore.v1new import types as beam_types
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindows

from beam_jobs import counters
from beam_jobs import entities
from beam_jobs import failures
from beam_jobs import job_class as job_class_lib
from beam_jobs import ndb_context
from beam_jobs import output_format
from beam_jobs import progress
from beam_jobs import stop_request
from beam_jobs import target as target_lib
from beam_jobs.io import before_images
from beam_jobs.io import write_modes

WRITES_TAG = 'writes'
ERRORS_TAG = 'errors'
# The keys whose map failed, for `run --retry-failed` (runs that keep a backup).
FAILED_TAG = 'failed_keys'


class JobItemError(failures.ClearError):
    """One entity or key failed in a job that asked to fail fast."""


def _as_pair(item: Any) -> tuple[str, str]:
    if not isinstance(item, tuple) or len(item) != 2:
        raise TypeError(
            f'map must yield (key, value) 2-tuples, jobs.Put or jobs.Delete; '
            f'it yielded {item!r}')
    key, value = item
    # App Engine MapReduce shuffled strings: reduce sees str keys and values.
    return str(key), str(value)


def _fails_fast(job: type, params: Mapping[str, Any]) -> bool:
    return bool(params.get('fail_fast', getattr(job, 'FAIL_FAST', False)))


class _MapFn(beam.DoFn):
    """Entity → model → `job.map`, routing pairs, writes and failures apart.

    Elements are entity protobufs (a Datastore read), Beam entities (an
    export) or models (`MapReduce`). Job code runs inside an ndb context
    (NdbContext) with the run's params visible; the context is entered and
    left once per `BATCH` elements rather than per element, with each
    element's use of it ended as leaving it would (`after_each`: event loop
    run, cache emptied), because entering and leaving cost more than a
    job's `map`. Batching holds elements back until a batch is full or the
    bundle ends, which only the global window allows without changing what
    a line belongs to: a windowed input is mapped one element at a time.
    """

    BATCH = 64

    def __init__(self, job: job_class_lib.JobClass, params: Mapping[str, Any],
                 target: target_lib.Target, batched: bool = True,
                 packed: bool = False, keeps_backup: bool = False,
                 per_namespace: bool = False):
        super().__init__()
        self._keeps_backup = keeps_backup
        self._per_namespace = per_namespace
        self._job = job
        self._params = dict(params)
        self._target = target
        self._batched = batched
        self._packed = packed
        self._models = {entities.kind_of(model): model
                        for model in job.entity_classes_to_map_over()}
        self._ndb = ndb_context.NdbContext(target)

    def setup(self):
        self._fail_fast = _fails_fast(self._job, self._params)
        self._params_scope = job_class_lib.mapper_params(self._params)
        self._builders = {kind: entities.model_builder(model).build
                          for kind, model in self._models.items()}
        self._read_names = {kind: f'entities_read.{kind}' for kind in self._models}
        self._class_kinds = {}
        self._entity_builders = {}

    def start_bundle(self):
        # Counted here and handed to Beam once per bundle: a Beam counter
        # update per element and per pair cost more than the map step itself.
        self._counts: collections.Counter[str] = collections.Counter()
        self._pending = []

    def process(self, element):
        if not self._batched:
            return self._ndb.run(self._map_batch, (element,))
        pending = self._pending
        pending.append(element)
        if len(pending) < self.BATCH:
            return ()
        self._pending = []
        return self._ndb.run(self._map_batch, pending)

    def finish_bundle(self):
        pending, self._pending = self._pending, []
        outputs = self._ndb.run(self._map_batch, pending) if pending else ()
        _flush_counts(self._counts)
        progress.publish(force=True)
        for output in outputs:
            if isinstance(output, beam.pvalue.TaggedOutput):
                yield beam.pvalue.TaggedOutput(
                    output.tag, GlobalWindows.windowed_value(output.value))
            else:
                yield GlobalWindows.windowed_value(output)

    def _map_batch(self, elements) -> list:
        """Inside the ndb context: `job.map` of each element, in order."""
        stop_request.check()
        outputs: list[Any] = []
        map_one = self._map_one
        after_each = self._ndb.after_each
        pairs = 0
        namespace_now = _UNSET
        with self._params_scope:
            for element in elements:
                if self._per_namespace:
                    # A run over several namespaces: what the map makes goes
                    # to the namespace of the entity it maps.
                    namespace = entities.namespace_of(element)
                    if namespace != namespace_now:
                        self._ndb.use_namespace(namespace)
                        namespace_now = namespace
                own, own_pairs = map_one(element)
                after_each()
                pairs += own_pairs
                outputs.extend(own)
        if pairs:
            self._counts['pairs_emitted'] += pairs
        progress.publish()
        return _packed(outputs) if self._packed else outputs

    def _map_one(self, element) -> tuple[list[Any], int]:
        """`job.map` of one element: what it yields, and how many are pairs."""
        counts = self._counts
        kind = self._class_kinds.get(type(element))
        build = None
        if kind is None:
            kind, build = self._kind_and_builder(element)
        counts[self._read_names.get(kind) or f'entities_read.{kind}'] += 1
        progress.count(kind)
        own: list[Any] = []
        writes = None
        try:
            model = element if build is None else build(element)
            counts['map_calls'] += 1
            for item in self._job.map(model) or ():
                if type(item) is tuple and len(item) == 2:  # pylint: disable=unidiomatic-typecheck
                    # App Engine MapReduce shuffled strings.
                    key, value = item
                    own.append((str(key), str(value)))
                    continue
                output = self._route(item, element)
                own.append(output)
                if isinstance(output, beam.pvalue.TaggedOutput):
                    op, write_kind = output.value[:2]
                    writes = writes or []
                    writes.append(f'{op}s.{write_kind}')
        except Exception as error:  # pylint: disable=broad-except
            return self._failed(element, error), 0
        for name in writes or ():
            counts[name] += 1
        return own, len(own) - len(writes or ())

    def _failed(self, element, error: Exception) -> list[Any]:
        """A failed map's outputs: its failure line (and key, to retry it),
        or the run's end when the job fails fast."""
        line = output_format.failure_line('map', _describe_key(element.key), error)
        if self._fail_fast:
            raise JobItemError(line) from error
        self._counts['errors'] += 1
        own: list[Any] = [beam.pvalue.TaggedOutput(ERRORS_TAG, line)]
        if self._keeps_backup and element.key is not None:
            own.append(beam.pvalue.TaggedOutput(
                FAILED_TAG, before_images.identity(element.key)))
        return own

    def _kind_and_builder(self, element):
        """The element's kind, and what makes its model (None: it is one)."""
        kind = self._class_kinds.get(type(element))
        if kind is not None:                # a model (MapReduce)
            return kind, None
        if isinstance(element, entities.EntityPb):    # a Datastore read
            kind = element.key.path[-1].kind
            return kind, self._builders.get(kind) or _no_model(kind)
        if isinstance(element, beam_types.Entity):      # an export read
            kind = entities.kind_of_entity(element)
            build = self._entity_builders.get(kind)
            if build is None:
                model_class = self._models.get(kind)
                build = self._entity_builders[kind] = (
                    entities.model_builder(model_class).build_entity
                    if model_class is not None else _no_model(kind))
            return kind, build
        kind = entities.kind_of(type(element))
        self._class_kinds[type(element)] = kind
        return kind, None

    def _route(self, item, element):
        if isinstance(item, job_class_lib.Put):
            kind = entities.kind_of(type(item.model))
            write: tuple[Any, ...] = ('put', kind, entities.to_beam_entity(item.model))
        elif isinstance(item, job_class_lib.Delete):
            key = item.ndb_key()
            write = ('delete', key.kind(), entities.to_beam_key(key))
        else:
            return _as_pair(item)
        if self._keeps_backup:
            write = _with_before(write, element)
        return beam.pvalue.TaggedOutput(WRITES_TAG, write)


_UNSET = object()


def _with_before(write: tuple, element) -> tuple:
    """`(op, kind, item, before, source)`: a write of the very entity the map
    read carries it as its before-image (no lookup needed); a write of another
    key carries None (looked up, batched, before it is written)."""
    source = before_images.identity(element.key)
    item = write[2]
    written = before_images.identity(getattr(item, 'key', item))
    return (*write, element if written == source else None, source)


def _packed(outputs: list) -> list:
    """A batch's pairs as `(key, [values])`, one per key; other outputs as
    they are. The shuffle then carries a few lists instead of every pair:
    Beam's local runner holds what it shuffles until the reduce, at ~150
    bytes a pair (the audit of 1,000,000 explorations: 6,280,000 pairs),
    and every element costs its per-element overhead on any runner. (Packing
    each list as one JSON text instead halved what the runner holds, but the
    reduce then decodes a second copy: a million explorations in one process
    peaked higher, so the lists stay lists.)"""
    by_key: dict = {}
    others = []
    for output in outputs:
        if type(output) is tuple:  # pylint: disable=unidiomatic-typecheck
            values = by_key.get(output[0])
            if values is None:
                by_key[output[0]] = [output[1]]
            else:
                values.append(output[1])
        else:
            others.append(output)
    others.extend(by_key.items())
    return others


def _unpacked(chunks) -> list:
    """The values of a key's packed lists (`_packed`), in one list."""
    values = []
    for chunk in chunks:
        values.extend(chunk)
    return values


def _no_model(kind: str):
    """For an entity of a kind the job does not map: the error it reports."""
    def fail(unused_element):
        raise KeyError(kind)
    return fail


def _flush_counts(counts: collections.Counter) -> None:
    for name, value in counts.items():
        Metrics.counter(counters.METRICS_NAMESPACE, name).inc(value)
    counts.clear()


def _describe_key(key) -> str:
    return entities.key_path(key) if key is not None else '(no key)'


class _ReduceFn(beam.DoFn):
    """`job.reduce(key, values)` for one key; each yielded value is a line.

    Lines leave as `(order, line)`: see `output_format.FAILURE_GROUP`.
    """

    def __init__(self, job: job_class_lib.JobClass, params: Mapping[str, Any],
                 target: target_lib.Target, packed: bool = False):
        super().__init__()
        self._job = job
        self._params = dict(params)
        self._ndb = ndb_context.NdbContext(target)
        self._packed = packed

    def setup(self):
        self._fail_fast = _fails_fast(self._job, self._params)

    def start_bundle(self):
        self._counts: collections.Counter[str] = collections.Counter()

    def finish_bundle(self):
        _flush_counts(self._counts)

    def process(self, element):
        key, values = element
        # reduce takes a list: the packed chunks' values (_packed), or the
        # runner's iterable of them.
        values = _unpacked(values) if self._packed else list(values)
        with self._ndb.active(), job_class_lib.mapper_params(self._params):
            try:
                self._counts['keys_reduced'] += 1
                lines: list[Any] = [((output_format.REPORT_GROUP, key, index), output_format.output_line(value))
                         for index, value in enumerate(
                             self._job.reduce(key, values) or ())]
            except Exception as error:  # pylint: disable=broad-except
                place = f'key {key!r}'
                if self._fail_fast:
                    raise JobItemError(output_format.failure_line('reduce', place, error)) from error
                self._counts['errors'] += 1
                lines = [beam.pvalue.TaggedOutput(
                    ERRORS_TAG, output_format.failure_line('reduce', place, error))]
        yield from lines


class _CombineFn(beam.CombineFn):
    """`job.combine(key, values)` as a CombineFn, so the runner lifts it.

    A CombineFn never sees the key, so its inputs are `(key, value)` pairs
    (built inside the fused map stage, never shuffled) and the accumulator
    is `[key, values]`. Before an accumulator leaves a bundle (`compact`),
    every `COMBINE_EVERY` values added, and when partial results merge,
    `combine` folds it: before the shuffle, that is what shrinks it. As in
    App Engine MapReduce and mrjob, `combine` may run zero or more times on
    any subset of a key's values, and `reduce` still gets a list of str
    values.
    """

    COMBINE_EVERY = 1000

    def __init__(self, job: job_class_lib.JobClass, params: Mapping[str, Any]):
        super().__init__()
        self._job = job
        self._params = dict(params)

    def _combine(self, key: str, values: list) -> list:
        if len(values) < 2:
            return values
        with job_class_lib.mapper_params(self._params):
            try:
                return [str(value)
                        for value in self._job.combine(key, values) or ()]
            except Exception as error:  # pylint: disable=broad-except
                raise JobItemError(
                    output_format.failure_line('combine', f'key {key!r}', error)) from error

    def create_accumulator(self):
        return [None, []]

    def add_input(self, accumulator, pair):
        key, value = pair
        accumulator[0] = key
        accumulator[1].append(value)
        # A multiple, not a minimum: a combine that does not shrink its
        # input must not run again on every later value.
        if len(accumulator[1]) % self.COMBINE_EVERY == 0:
            accumulator[1] = self._combine(key, accumulator[1])
        return accumulator

    def merge_accumulators(self, accumulators):
        key: Any = None
        values: list[Any] = []
        for other_key, other_values in accumulators:
            key = other_key if other_key is not None else key
            values.extend(other_values)
        return [key, self._combine(key, values)]

    def compact(self, accumulator):
        key, values = accumulator
        return [key, self._combine(key, values)]

    def extract_output(self, accumulator):
        return accumulator[1]


class _CombineShuffle(beam.PTransform):
    """(key, value) pairs → (key, [values]), combined before the shuffle."""

    def __init__(self, combine_fn: beam.CombineFn):
        super().__init__()
        self._combine_fn = combine_fn

    def expand(self, pairs):
        return (
            pairs
            | 'Key the values' >> beam.Map(lambda pair: (pair[0], pair))
            | 'Combine' >> beam.CombinePerKey(self._combine_fn)
        )


class JobSteps(beam.PTransform):
    """map → stringify → GroupByKey → reduce, over entities or models.

    Returns a dict: `lines`, every output line (failures and the write
    summary included) as `(order, line)`, `writes` (`(op, kind,
    entity_or_key)` for the Datastore sinks; with a backup kept, also the
    before-image and the source: `_with_before`), and `failed_keys` (with a
    backup kept, the identity of each entity whose map failed).
    """

    def __init__(self, job: job_class_lib.JobClass, params: Mapping[str, Any],
                 target: target_lib.Target, write_mode: write_modes.WriteMode,
                 per_namespace: bool = False):
        super().__init__()
        self._job = job
        self._params = params
        self._target = target
        self._write_mode = write_mode
        self._per_namespace = per_namespace

    def _shuffle(self) -> beam.PTransform:
        """GroupByKey (of packed pairs); or, for a job with `combine`, a
        lifted CombinePerKey of the pairs."""
        if not job_class_lib.has_combine(self._job):
            return beam.GroupByKey()
        return _CombineShuffle(_CombineFn(self._job, self._params))

    def expand(self, items):
        batched = isinstance(items.windowing.windowfn, GlobalWindows)
        packed = not job_class_lib.has_combine(self._job)
        keeps_backup = self._write_mode.keeps_before_images
        mapped = items | 'Map' >> beam.ParDo(
            _MapFn(self._job, self._params, self._target, batched, packed,
                   keeps_backup, self._per_namespace)).with_outputs(
                ERRORS_TAG, WRITES_TAG, FAILED_TAG, main='pairs')
        reduced = (
            mapped.pairs
            | 'Shuffle' >> self._shuffle()
            | 'Reduce' >> beam.ParDo(
                _ReduceFn(self._job, self._params, self._target, packed)).with_outputs(
                    ERRORS_TAG, main='lines')
        )
        write_summary = (
            mapped[WRITES_TAG]
            | 'Op and kind' >> beam.Map(lambda write: (write[0], write[1]))
            | 'Count writes' >> beam.combiners.Count.PerElement()
            | 'Describe writes' >> beam.Map(_summary_line, self._write_mode)
        )
        errors = ((mapped[ERRORS_TAG], reduced[ERRORS_TAG])
                  | 'All errors' >> beam.Flatten()
                  | 'Order errors' >> beam.Map(
                      lambda line: ((output_format.FAILURE_GROUP, line, 0), line)))
        summary = write_summary | 'Order summary' >> beam.Map(
            lambda line: ((output_format.SUMMARY_GROUP, line, 0), line))
        lines = ((errors, reduced.lines, summary)
                 | 'All lines' >> beam.Flatten()
                 | 'Count output' >> beam.Map(_count_output_line))
        return {'lines': lines, 'writes': mapped[WRITES_TAG],
                'failed_keys': mapped[FAILED_TAG]}


def _summary_line(counted_write: tuple, write_mode: write_modes.WriteMode) -> str:
    (op, kind), count = counted_write
    return write_mode.summary(op, count, kind)


_OUTPUT_LINES = Metrics.counter(counters.METRICS_NAMESPACE, 'output_lines')


def _count_output_line(ordered_line):
    _OUTPUT_LINES.inc()
    return ordered_line
