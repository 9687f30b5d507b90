"""Realistic sample explorations for the demo, the tests and the benchmark.

Deterministic: the same count and seed give the same entities (ids,
timestamps and all), so loading twice leaves the same data.

    python -m pipelines.sample_data --explorations 3000
    python -m pipelines.sample_data --export DIR --explorations 1000000

`--export` writes the same explorations as a Datastore managed export under
DIR instead of putting them into the Datastore: production-size data for
`ReadExport`, or for the emulator's `:import`, without the emulator's slow
puts. Data files are written in parallel, one process per core.

Only the first `POOL` explorations are made up; every later one is a copy of
a pool member under its own id (`exp-005001` is `exp-000001` again, and so
on). Real data repeats its shapes too, and at scale what a run measures is
the size and the shape of the entities, not that each is unique. It is what
makes a large export quick: making up an exploration with `random` and
serialising it through ndb costs some 1.6 ms of CPU, while the export copies
a pool member's record, renamed, in some 30 µs (a million explorations: about
a minute on two cores, mostly writing their 12 GB, instead of a quarter of an
hour). The tests and the demo (3,000) stay within the pool: their data is
the same as before the pool existed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import multiprocessing
import os
import random
import sys
import time
from typing import Iterator, Optional

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from google.auth.credentials import AnonymousCredentials
from google.api_core import exceptions as api_exceptions
from google.cloud import ndb

from beam_jobs import emulator
from beam_jobs import entities
from beam_jobs import failures
from beam_jobs import ndb_context
from beam_jobs import target as target_lib
from beam_jobs.export import protos
from beam_jobs.export import records
from beam_jobs.export import writer
from pipelines.models import exp_models

# Interaction ids as Oppia names them, with rough weights of how often
# they appear in real explorations.
INTERACTIONS = {
    'TextInput': 18, 'MultipleChoiceInput': 22, 'NumericInput': 10,
    'ItemSelectionInput': 6, 'DragAndDropSortInput': 4, 'FractionInput': 5,
    'ImageClickInput': 2, 'InteractiveMap': 1, 'MathEquationInput': 2,
    'NumberWithUnits': 2, 'SetInput': 2, 'CodeRepl': 1, 'GraphInput': 1,
    'AlgebraicExpressionInput': 2, 'NumericExpressionInput': 1,
    'RatioExpressionInput': 1, 'PencilCodeEditor': 1, 'MusicNotesInput': 1,
}
CATEGORIES = ['Algebra', 'Arithmetic', 'Biology', 'Chemistry', 'Computing',
              'English', 'Geography', 'History', 'Music', 'Physics']
WORDS = ('learner answer fraction number history planet water energy cell '
         'rhythm code graph ratio triangle verb noun river mountain atom '
         'melody loop variable equation decimal percent map sort').split()
DELETED_EVERY = 31          # ~3% soft-deleted, as real data has
LEGACY_SCHEMA_EVERY = 3     # a third still on states schema v1
CORRUPT_EVERY = 999         # a rare v1 exploration whose content is broken
EPOCH = datetime.datetime(2024, 1, 1)
# Explorations made up one by one; later ones are copies of these.
POOL = 5000


def _html(rng: random.Random, sentences: int) -> str:
    return ''.join('<p>%s.</p>' % ' '.join(rng.choices(WORDS, k=rng.randint(6, 14))).capitalize()
                   for _ in range(sentences))


def _interaction(rng: random.Random, interaction_id: str, next_state: Optional[str]) -> dict:
    outcome = {'dest': next_state, 'feedback': {'content_id': 'feedback_1',
               'html': _html(rng, 1)}, 'labelled_as_correct': True,
               'param_changes': [], 'refresher_exploration_id': None}
    if interaction_id == 'EndExploration':
        return {'id': interaction_id, 'customization_args': {
            'recommendedExplorationIds': {'value': []}}, 'answer_groups': [],
            'default_outcome': None, 'hints': [], 'solution': None,
            'confirmed_unclassified_answers': []}
    choices = [{'content_id': f'ca_choices_{i}', 'html': _html(rng, 1)}
               for i in range(rng.randint(2, 5))]
    return {
        'id': interaction_id,
        'customization_args': {'choices': {'value': choices},
                               'placeholder': {'value': {'unicode_str': ''}},
                               'rows': {'value': 1}},
        'answer_groups': [{
            'rule_specs': [{'rule_type': 'Equals',
                            'inputs': {'x': rng.choice(WORDS)}}],
            'outcome': outcome, 'training_data': [],
            'tagged_skill_misconception_id': None,
        } for _ in range(rng.randint(1, 3))],
        'default_outcome': dict(outcome, labelled_as_correct=False),
        'hints': [{'hint_content': {'content_id': 'hint_1',
                                    'html': _html(rng, 1)}}],
        'solution': None,
        'confirmed_unclassified_answers': [],
    }


def _states(rng: random.Random, legacy: bool, corrupt: bool) -> tuple[str, dict]:
    names = ['Introduction'] + [f'Question {i}' for i in range(1, rng.randint(2, 9))] + ['End']
    weights = list(INTERACTIONS.values())
    states = {}
    for index, name in enumerate(names):
        is_last = index == len(names) - 1
        interaction_id = ('EndExploration' if is_last else 'Continue' if index == 0
                          else rng.choices(list(INTERACTIONS), weights)[0])
        html = _html(rng, rng.randint(1, 4))
        content = html if legacy else {'content_id': 'content', 'html': html}
        if corrupt and index == 1:
            content = len(html)
        states[name] = {
            'content': content,
            'interaction': _interaction(rng, interaction_id,
                                        None if is_last else names[index + 1]),
            'param_changes': [],
            'recorded_voiceovers': {'voiceovers_mapping': {'content': {}}},
            'solicit_answer_details': False,
            'card_is_checkpoint': index == 0,
        }
    return names[0], states


def explorations(count: int, seed: int = 2024, first: int = 1,
                 pool: int = POOL) -> Iterator[exp_models.ExplorationModel]:
    """Explorations `first`…`count` (`exp-000001`…); needs an ndb context.

    Each depends only on its number and the seed, so any range of them can
    be made on its own (as the parallel export does). Number n above `pool`
    is pool member (n - 1) % pool + 1, every property the same, under its
    own id `exp-{n:06d}`.
    """
    for number in range(first, count + 1):
        member = (number - 1) % pool + 1
        rng = random.Random(seed * 1_000_003 + member)
        legacy = member % LEGACY_SCHEMA_EVERY == 0
        init_state, states = _states(rng, legacy, corrupt=legacy and member % CORRUPT_EVERY == 0)
        created = EPOCH + datetime.timedelta(minutes=member * 7)
        yield exp_models.ExplorationModel(
            id=f'exp-{number:06d}',
            title=' '.join(rng.choices(WORDS, k=3)).title(),
            category=rng.choice(CATEGORIES),
            objective=_html(rng, 1),
            init_state_name=init_state,
            states_schema_version=1 if legacy else 2,
            states=states,
            deleted=member % DELETED_EVERY == 0,
            created_on=created,
            last_updated=created + datetime.timedelta(days=rng.randint(0, 300)),
            version=rng.randint(1, 40))


def load(count: int, target: target_lib.Target, batch: int = 100) -> int:
    """Put `count` sample explorations into the target; returns how many.

    Batches stay small: explorations are ~13 KB each, and one commit must
    stay under the 4 MiB a gRPC message may carry.
    """
    context = ndb_context.NdbContext(target)
    with context.active():
        pending = []
        for model in explorations(count):
            pending.append(model)
            if len(pending) == batch:
                ndb.put_multi(pending)
                pending = []
        if pending:
            ndb.put_multi(pending)
    return count


def _export_file(path: str, first: int, last: int, project: str,
                 namespace: Optional[str], pool: int) -> tuple[int, int]:
    """One data file of explorations `first`…`last`, made up (runs in a worker)."""
    # Anonymous: building keys needs no credentials, and looking for real
    # ones could wait on a metadata server. legacy_data as `load` uses it.
    client = ndb.Client(project=project, namespace=namespace,
                        credentials=AnonymousCredentials())
    with client.context(legacy_data=True):
        return writer.write_data_file(
            path, explorations(last, first=first, pool=pool))


def _read_pool(paths: list[str], pool: int) -> list[bytes]:
    """The records of pool members 1…`pool`, from the data files that hold them."""
    members: list[bytes] = []
    for path in paths:
        with FileSystems.open(
                path, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
            members.extend(record for _, record in records.read_records(stream, path))
    return members[:pool]    # the last file may hold copies after the pool


def _copy_files(jobs: list[tuple[str, int, int]], pool_paths: list[str],
                pool: int) -> list[tuple[int, int]]:
    """Data files of explorations above the pool (runs in a worker).

    Each is a pool member's record with its key renamed: the same bytes
    `_export_file` would write for it (its properties are the member's),
    without making it up and serialising it through ndb again. The pool is
    read once for all the files of this worker.
    """
    members = _read_pool(pool_paths, pool)

    def copies(first: int, last: int) -> Iterator[bytes]:
        for number in range(first, last + 1):
            entity = protos.EntityProto.FromString(members[(number - 1) % pool])
            name = f'exp-{number:06d}'
            # A root entity: its entity group is its own key.
            entity.key.path.element[-1].name = name
            entity.entity_group.element[-1].name = name
            yield entity.SerializeToString()

    return [writer.write_record_file(path, copies(first, last))
            for path, first, last in jobs]


def export(count: int, dest: str, project: str,
           namespace: Optional[str] = None,
           per_file: int = writer.DEFAULT_ENTITIES_PER_FILE,
           processes: Optional[int] = None, pool: int = POOL) -> str:
    """Writes the explorations `load` would put as a managed export.

    Returns the path of its `.overall_export_metadata`. Data files are
    written by `processes` worker processes (default: one per core): first
    the files that hold the pool's explorations, made up one by one, then
    the others, copied from the pool's records in those files.
    """
    kind = entities.kind_of(exp_models.ExplorationModel)
    export_dir, start = writer.new_export_dir(dest)
    folder = writer.set_folder(kind, namespace)
    ranges = [(first, min(first + per_file - 1, count))
              for first in range(1, count + 1, per_file)]
    paths = [f'{export_dir}/{folder}/output-{index}' for index in range(len(ranges))]
    files = [(path, first, last) for path, (first, last) in zip(paths, ranges)]
    # Every file that starts within the pool is made up; together they hold
    # members 1…pool (or all there are), which is what the copies read. At
    # 5,000 a file the pool is one file, made by one worker: some 8 s, most
    # of an export of 100,000.
    made = [job for job in files if job[1] <= pool]
    copied = files[len(made):]
    pool_paths = [path for path, _, _ in made]
    workers = min(processes or os.cpu_count() or 1, len(files))
    # The copied files are dealt out in one share per worker, so that each
    # worker reads the pool once.
    shares = [share for share in (copied[i::workers] for i in range(workers)) if share]
    if workers <= 1:
        results = [_export_file(*job, project, namespace, pool) for job in made]
        for share in shares:
            results += _copy_files(share, pool_paths, pool)
    else:
        # Spawned, not forked: the parent has loaded gRPC, which forks badly.
        with concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context('spawn')) as executor:
            results = [future.result() for future in [
                executor.submit(_export_file, *job, project, namespace, pool)
                for job in made]]
            # Only now are the pool's files complete: the copies may start.
            for future in [executor.submit(_copy_files, share, pool_paths, pool)
                           for share in shares]:
                results += future.result()
    written = writer.WrittenSet(
        kind, namespace or '', files=[path.rsplit('/', 1)[1] for path in paths],
        num_entities=sum(entities for entities, _ in results),
        num_bytes=sum(size for _, size in results))
    return writer.write_metadata(export_dir, [written], start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--explorations', type=int, default=3000)
    parser.add_argument('--namespace', default=None)
    parser.add_argument('--export', metavar='DIR', default=None,
                        help='write a managed export under DIR instead of '
                        'putting the explorations into the Datastore')
    parser.add_argument('--project', default=None,
                        help='the project in exported keys (default: '
                        f'DATASTORE_PROJECT_ID or {emulator.DEFAULT_PROJECT})')
    parser.add_argument('--entities-per-file', type=int,
                        default=writer.DEFAULT_ENTITIES_PER_FILE)
    args = parser.parse_args(argv)
    if args.entities_per_file < 1:
        parser.error('--entities-per-file must be a positive number')
    if args.export:
        project = (args.project or os.environ.get('DATASTORE_PROJECT_ID')
                   or emulator.DEFAULT_PROJECT)
        began = time.perf_counter()
        path = export(args.explorations, args.export, project, args.namespace,
                      args.entities_per_file)
        seconds = time.perf_counter() - began
        print(f'Exported {args.explorations} sample explorations to {path} in '
              f'{seconds:.1f} s ({args.explorations / seconds:,.0f} entities/s).')
        return 0
    try:
        emulator.ensure_environment()
        target = target_lib.Target.from_environment(namespace=args.namespace)
        loaded = load(args.explorations, target)
    except emulator.EmulatorError as error:
        print(f'sample_data: {error}', file=sys.stderr)
        return 2
    except (api_exceptions.GoogleAPICallError, api_exceptions.RetryError) as error:
        # ndb wraps the Datastore's answer in retries: say what it was.
        print(f'sample_data: {failures.describe(error)}', file=sys.stderr)
        return 1
    print(f'Loaded {loaded} sample explorations into project {target.project}'
          f'{" namespace " + target.namespace if target.namespace else ""}.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
