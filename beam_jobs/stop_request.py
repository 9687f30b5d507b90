"""A stop asked of this process's run, checked by the run's own steps.

A signal handler (lifecycle/stops.py) raises `StopRun` wherever the main
thread is, and notes the stop here. Where it lands inside a destructor or a
library's cleanup, Python prints and drops it ("Exception ignored in"), and
the run would go on to complete as if never canceled. So the map step also
asks `check()` once per batch: a stop that was dropped is raised again there,
at a point where it ends the run.
"""

from __future__ import annotations

import threading
from typing import Optional


class StopRun(BaseException):
    """Raised by our signal handlers. A BaseException, so job code's
    `except Exception` cannot swallow it as one more failed item."""


_asked = threading.Event()
_reason: list = []


def ask(reason: str) -> None:
    if not _asked.is_set():
        _reason[:] = [reason]
        _asked.set()


def clear() -> None:
    _asked.clear()
    _reason.clear()


def asked() -> Optional[str]:
    return _reason[0] if _asked.is_set() and _reason else None


def check() -> None:
    """Raise StopRun if a stop was asked (cheap: one Event read)."""
    if _asked.is_set():
        raise StopRun(asked() or 'stopped')
