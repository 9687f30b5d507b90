"""Models, jobs and data of production's shapes, for `bench/shapes.py`.

Also a job registry (`--registry bench.shape_jobs`), so each variant runs as
a coordinator runs it: `beam-jobs run JOB` in a process of its own.

Shapes (each a kind; each job reads every property of every entity):

    SmallProps   40 small properties (20 strings, 20 integers)
    LongText     one 20 KB text
    NestedJson   a JSON property: a 3-level dict of ~3 KB
    Repeated     two repeated properties of 50 strings and 50 integers
    BigDoc       a 12 KB text (the two-kind job's large kind)
    SmallDoc     two small properties (the two-kind job's other kind)
    Blob30K / Blob300K / Blob1M   one text of that size (reads of large entities)
"""

from __future__ import annotations

import random

from google.cloud import ndb

from beam_jobs import JobRegistry, jobs


# 40 small properties: s00..s19 strings, i00..i19 integers.
SmallProps = type('SmallProps', (ndb.Model,), {
    **{f's{index:02d}': ndb.StringProperty() for index in range(20)},
    **{f'i{index:02d}': ndb.IntegerProperty() for index in range(20)},
    '__module__': __name__})


class LongText(ndb.Model):
    text = ndb.TextProperty()


class NestedJson(ndb.Model):
    data = ndb.JsonProperty()


class Repeated(ndb.Model):
    tags = ndb.StringProperty(repeated=True)
    scores = ndb.IntegerProperty(repeated=True)


class BigDoc(ndb.Model):
    title = ndb.StringProperty()
    body = ndb.TextProperty()


class SmallDoc(ndb.Model):
    title = ndb.StringProperty()
    rank = ndb.IntegerProperty()


class Blob30K(ndb.Model):
    text = ndb.TextProperty()


class Blob300K(ndb.Model):
    text = ndb.TextProperty()


class Blob1M(ndb.Model):
    text = ndb.TextProperty()


def _text(rng: random.Random, size: int) -> str:
    words = ['state', 'content', 'html', 'answer', 'hint', 'feedback', 'rule']
    out, length = [], 0
    while length < size:
        word = rng.choice(words)
        out.append(word)
        length += len(word) + 1
    return ' '.join(out)[:size]


def make(kind: str, index: int) -> ndb.Model:
    """Entity `index` of `kind`, the same every time (call in a context)."""
    rng = random.Random(f'{kind}-{index}')
    ident = f'{kind.lower()}-{index:07d}'
    if kind == 'SmallProps':
        values = {f's{i:02d}': f'value {rng.randrange(1000)}' for i in range(20)}
        values.update({f'i{i:02d}': rng.randrange(10 ** 6) for i in range(20)})
        return SmallProps(id=ident, **values)
    if kind == 'LongText':
        return LongText(id=ident, text=_text(rng, 20_000))
    if kind == 'NestedJson':
        return NestedJson(id=ident, data={
            f'section{a}': {f'part{b}': {'text': _text(rng, 100), 'n': rng.randrange(100),
                                         'flags': [True, False, rng.random() < 0.5]}
                            for b in range(6)}
            for a in range(4)})
    if kind == 'Repeated':
        return Repeated(id=ident, tags=[f'tag{rng.randrange(500)}' for _ in range(50)],
                        scores=[rng.randrange(1000) for _ in range(50)])
    if kind == 'BigDoc':
        return BigDoc(id=ident, title=f'doc {index}', body=_text(rng, 12_000))
    if kind == 'SmallDoc':
        return SmallDoc(id=ident, title=f'small {index}', rank=index % 97)
    size = {'Blob30K': 30_000, 'Blob300K': 300_000, 'Blob1M': 1_000_000}[kind]
    return globals()[kind](id=ident, text=_text(rng, size))


# Each job reads every property, as a real job over that shape would.

class _ShapeJob(jobs.BaseMapReduceOneOffJobManager):

    @staticmethod
    def reduce(key, values):
        yield (key, len(values))


class SmallPropsJob(_ShapeJob):
    @classmethod
    def entity_classes_to_map_over(cls):
        return [SmallProps]

    @staticmethod
    def map(item):
        total = sum(getattr(item, f'i{i:02d}') for i in range(20))
        chars = sum(len(getattr(item, f's{i:02d}')) for i in range(20))
        yield (total % 10, chars)


class LongTextJob(_ShapeJob):
    @classmethod
    def entity_classes_to_map_over(cls):
        return [LongText]

    @staticmethod
    def map(item):
        yield (item.text.count('state') % 10, len(item.text))


class NestedJsonJob(_ShapeJob):
    @classmethod
    def entity_classes_to_map_over(cls):
        return [NestedJson]

    @staticmethod
    def map(item):
        total = sum(part['n'] for section in item.data.values() for part in section.values())
        yield (total % 10, item.key.id())


class RepeatedJob(_ShapeJob):
    @classmethod
    def entity_classes_to_map_over(cls):
        return [Repeated]

    @staticmethod
    def map(item):
        yield (sum(item.scores) % 10, len(set(item.tags)))


class BigDocJob(_ShapeJob):
    """The one-kind job: every document's length, by its first letter."""

    @classmethod
    def entity_classes_to_map_over(cls):
        return [BigDoc]

    @staticmethod
    def map(item):
        yield (item.body[:1], len(item.body))


class TwoKindsJob(BigDocJob):
    """The same over two kinds at once."""

    @classmethod
    def entity_classes_to_map_over(cls):
        return [BigDoc, SmallDoc]

    @staticmethod
    def map(item):
        if isinstance(item, BigDoc):
            yield (item.body[:1], len(item.body))
        else:
            yield ('small', item.rank)


class BlobJob(_ShapeJob):
    @staticmethod
    def map(item):
        yield ('chars', len(item.text))


class Blob30KJob(BlobJob):
    @classmethod
    def entity_classes_to_map_over(cls):
        return [Blob30K]


class Blob300KJob(BlobJob):
    @classmethod
    def entity_classes_to_map_over(cls):
        return [Blob300K]


class Blob1MJob(BlobJob):
    @classmethod
    def entity_classes_to_map_over(cls):
        return [Blob1M]


SHAPE_JOBS = {'SmallProps': SmallPropsJob, 'LongText': LongTextJob,
              'NestedJson': NestedJsonJob, 'Repeated': RepeatedJob}
BLOB_JOBS = {'Blob30K': Blob30KJob, 'Blob300K': Blob300KJob, 'Blob1M': Blob1MJob}
REGISTRY = JobRegistry([*SHAPE_JOBS.values(), BigDocJob, TwoKindsJob, *BLOB_JOBS.values()])
