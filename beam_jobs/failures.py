"""What a failure was, in the words that help: the real cause, not the wrapper.

Beam's Datastore IO reads `error.code.value` while handling a failed RPC; when
the status has no code (an emulator's bare `Unknown`) that raises
`'NoneType' object has no attribute 'value'`, and the gRPC status that
explains everything is left in the exception's context. Beam then re-raises
with the step's name appended. So a failure is described by walking the
chain for the Datastore's own error (its gRPC status and message) and
keeping Beam's `[while running '…']` for where it happened.
"""

from __future__ import annotations

import re
import traceback
from typing import Iterator, Optional

from google.api_core import exceptions as api_exceptions

from beam_jobs import emulator

MAX_CHARS = 4000


class ClearError(RuntimeError):
    """An error whose message already says what went wrong and what to do:
    described as it is, never dug into."""
_STEP = re.compile(r" \[while running '([^']*)'\]")


def chain(error: Optional[BaseException]) -> Iterator[BaseException]:
    """The error, then what caused it, then what caused that…"""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def datastore_cause(error: BaseException) -> Optional[str]:
    """The Datastore's own error somewhere in the chain, as `STATUS: message`."""
    for link in chain(error):
        if isinstance(link, api_exceptions.RetryError):
            cause = link.cause
            inner = (datastore_cause(cause) if isinstance(cause, BaseException)
                     else str(cause or '') or None)
            if inner:
                return f'{inner} (retries ran out)'
        if isinstance(link, api_exceptions.GoogleAPICallError):
            status = link.grpc_status_code.name if link.grpc_status_code else (
                f'HTTP {link.code}' if link.code else type(link).__name__)
            return f'{status}: {link.message or "(the Datastore gave no message)"}'
        code = getattr(link, 'code', None)
        details = getattr(link, 'details', None)
        if callable(code) and callable(details) and hasattr(link, 'debug_error_string'):
            try:  # a raw grpc.RpcError
                return f'{code().name}: {details()}'
            except Exception:  # pylint: disable=broad-except
                continue
    return None


def describe(error: BaseException) -> str:
    """One line (or a few) for a run record and the CLI: the real cause first."""
    text = ''.join(traceback.format_exception_only(type(error), error)).strip()
    if any(isinstance(link, ClearError) for link in chain(error)):
        return text[-MAX_CHARS:]
    cause = datastore_cause(error)
    if cause:
        step = _STEP.search(text)
        where = f" while running '{step.group(1)}'" if step else ''
        # Beam appends the step to the error's own message too: say it once.
        cause = _STEP.sub('', cause).strip()
        text = f'Datastore error{where}: {cause}'
        explained = emulator.explain(error)
        if explained:
            text = f'{text}. {explained}'
    return text[-MAX_CHARS:]
