"""When a query of the Datastore read fails midway: what is retried, how long
to wait, and the error once the bound is reached.

- **Retried**: DEADLINE_EXCEEDED, UNAVAILABLE (a dropped connection: the
  client reports `UNAVAILABLE: Stream removed` on the call in flight),
  ABORTED, and RESOURCE_EXHAUSTED from throttling, though not gRPC's own
  message-size cap, which would fail the same way again. Anything else
  (INVALID_ARGUMENT, PERMISSION_DENIED, …) fails the read at once.
- **Backoff**: doubling from `FIRST_DELAY_SECS` up to `MAX_DELAY_SECS`,
  jittered, for at most `ATTEMPTS` tries in a row of one page; a page that
  arrives starts the count again, so a long read survives scattered faults.
- **Ours alone**: the client's own (GAPIC) retry is switched off for these
  queries (`NO_CLIENT_RETRY`), so each failure is seen, counted and resumed
  from the cursor here, once.
"""

from __future__ import annotations

import dataclasses
import random

from google.api_core import exceptions as api_exceptions
from google.api_core import retry as api_retry

from beam_jobs import failures

# Tries of one page before the read fails: 1 + 5 retries, waiting 1, 2, 4,
# 8 and 16 s (less the jitter): at most 31 s for a Datastore to come back,
# well inside a run's life, yet short enough that a real outage ends it.
ATTEMPTS = 6
FIRST_DELAY_SECS = 1.0
MAX_DELAY_SECS = 30.0
# One try of one page; past it, DEADLINE_EXCEEDED (and a retry). As long as
# the client's own default: the emulator takes 11-13 s for one page of an
# 80,000-entity kind (FIELD-NOTES), a busy Datastore longer.
QUERY_TIMEOUT_SECS = 60.0
RETRYABLE = frozenset({'DEADLINE_EXCEEDED', 'UNAVAILABLE', 'ABORTED', 'RESOURCE_EXHAUSTED'})
# How gRPC words its own cap on message sizes (also RESOURCE_EXHAUSTED).
_SIZE_CAP = 'larger than max'


def _never(unused_error: Exception) -> bool:
    return False


# google-cloud-datastore 2.27's `query.fetch(retry=None)` does not turn its
# retry off ("If None is specified, requests will be retried using a default
# configuration"): the query passes `retry` on only when it is not None, so
# the GAPIC method's default applies (DEADLINE_EXCEEDED and UNAVAILABLE
# retried for up to 60 s, silently: a read through a dropped connection
# finished without a trace, from the start of the lost page). A retry that
# retries nothing is the public way to say "none".
NO_CLIENT_RETRY = api_retry.Retry(predicate=_never)


@dataclasses.dataclass(frozen=True)
class Backoff:
    """How many tries of a page, and the waits between them."""

    attempts: int = ATTEMPTS
    first_delay: float = FIRST_DELAY_SECS
    max_delay: float = MAX_DELAY_SECS

    @classmethod
    def configured(cls) -> 'Backoff':
        """The module's constants as they are when the read is built (a test
        shortens them for a whole run)."""
        return cls(ATTEMPTS, FIRST_DELAY_SECS, MAX_DELAY_SECS)

    def delay(self, failure: int) -> float:
        """Seconds to wait after the `failure`-th failure in a row: jittered
        between half and all of the doubled delay, so that readers that
        failed together do not all ask again at the same moment."""
        ceiling: float = min(self.max_delay, self.first_delay * 2 ** (failure - 1))
        return ceiling * random.uniform(0.5, 1.0)


def status(error: BaseException) -> str:
    """The gRPC status of a failed call (`UNAVAILABLE`), or the error's type."""
    code = getattr(error, 'grpc_status_code', None)
    return code.name if code is not None else type(error).__name__


def is_retryable(error: BaseException) -> bool:
    if not isinstance(error, api_exceptions.GoogleAPICallError):
        return False
    if status(error) == 'RESOURCE_EXHAUSTED' and _SIZE_CAP in (error.message or ''):
        return False
    return status(error) in RETRYABLE


def describe(error: BaseException) -> str:
    """`UNAVAILABLE (Stream removed)`: the status and the Datastore's words."""
    message = getattr(error, 'message', None) or str(error)
    return f'{status(error)} ({message})' if message else status(error)


class ReadFailedError(failures.ClearError):
    """A query that kept failing with a retryable status: the bound is reached."""


def gave_up(where: str, error: BaseException, attempts: int) -> ReadFailedError:
    """The error that ends the run: one sentence naming what was read (kind,
    key range, namespace) and the status. Built whole, so it pickles."""
    return ReadFailedError(
        f'Reading {where} failed {attempts} times in a row with '
        f'{describe(error)}; check that the Datastore is reachable and '
        'not throttling, then run the job again.')
