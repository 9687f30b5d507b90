"""Explorations shaped like the guide's example job, with a seed of their own.

The guide's `InteractionAuditOneOffJob` groups every state of every live
exploration by its interaction id. This data has that job's shape, not the
demo's (pipelines/sample_data.py, ~13 KB an exploration):

- 10% of explorations soft-deleted (`deleted=True`; the job skips them);
- 1 to 6 states, stored as the JSON property `states`;
- each state an interaction id out of `INTERACTIONS` (5) and ~130 characters
  of HTML content.

So ~3.5 pairs an entity, and a reduce that yields, for each of the 5 keys,
one line holding a fifth of all pairs (~12,600 values at 20,000
explorations): a report past its 900,000-character cap.

Deterministic: exploration n depends only on n and the seed.
"""

from __future__ import annotations

import datetime
import random
from typing import Iterator

from pipelines.models import exp_models

SEED = 33
INTERACTIONS = ('TextInput', 'MultipleChoiceInput', 'NumericInput',
                'ItemSelectionInput', 'Continue')
DELETED_FRACTION = 0.10
MIN_STATES, MAX_STATES = 1, 6
HTML_CHARS = 130
_WORDS = ('learner answer fraction number history planet water energy cell '
          'rhythm code graph ratio triangle verb noun river mountain atom').split()
_EPOCH = datetime.datetime(2025, 1, 1)


def _html(rng: random.Random) -> str:
    """About `HTML_CHARS` characters: `<p>` sentences of random words."""
    text = ''
    while len(text) < HTML_CHARS - 12:
        text += '<p>%s.</p>' % ' '.join(rng.choices(_WORDS, k=rng.randint(3, 6))).capitalize()
    return text


def exploration(number: int, seed: int = SEED) -> exp_models.ExplorationModel:
    """Exploration `guide-{number:06d}` (call inside an ndb context)."""
    rng = random.Random(seed * 1_000_003 + number)
    names = [f'State {index}' for index in range(rng.randint(MIN_STATES, MAX_STATES))]
    states = {name: {'content': {'content_id': 'content', 'html': _html(rng)},
                     'interaction': {'id': rng.choice(INTERACTIONS)}}
              for name in names}
    created = _EPOCH + datetime.timedelta(minutes=number)
    return exp_models.ExplorationModel(
        id=f'guide-{number:06d}', title=f'Exploration {number}',
        category='Guide', init_state_name=names[0], states=states,
        states_schema_version=2, deleted=rng.random() < DELETED_FRACTION,
        created_on=created, last_updated=created)


def explorations(count: int, seed: int = SEED) -> Iterator[exp_models.ExplorationModel]:
    """Explorations 1…`count`."""
    for number in range(1, count + 1):
        yield exploration(number, seed)
