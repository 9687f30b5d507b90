"""How times and durations read, the same in the CLI, the console and reports."""

from __future__ import annotations

import datetime
import time
from typing import Optional


def when(msec: Optional[int]) -> str:
    """A record's time (ms since the epoch) in this machine's local time."""
    if not msec:
        return '-'
    return datetime.datetime.fromtimestamp(msec / 1000).strftime('%Y-%m-%d %H:%M:%S')


def seconds(value: Optional[float]) -> str:
    """`12.3` (for tables), `-` when unknown."""
    return '-' if value is None else f'{value:.1f}'


def duration(value: Optional[float]) -> str:
    """`12.3 s`, `4 min 5 s`, `2 h 3 min`; `-` when unknown."""
    if value is None:
        return '-'
    if value < 60:
        return f'{value:.1f} s'
    minutes, secs = divmod(int(round(value)), 60)
    if minutes < 60:
        return f'{minutes} min {secs} s'
    hours, minutes = divmod(minutes, 60)
    return f'{hours} h {minutes} min'


def ago(msec: Optional[int], now_msec: Optional[int] = None) -> str:
    """How long ago: `3 d`, `5 h`, `12 min`, `40 s`; `-` when unknown."""
    if not msec:
        return '-'
    now_msec = now_msec if now_msec is not None else int(time.time() * 1000)
    seconds = max(0, (now_msec - msec) / 1000)
    for size, unit in ((86400, 'd'), (3600, 'h'), (60, 'min')):
        if seconds >= size:
            return f'{int(seconds // size)} {unit}'
    return f'{int(seconds)} s'


def until(msec: Optional[int], now_msec: Optional[int] = None) -> str:
    """Time left until `msec`: `12 d (2026-12-30 10:00)`, `expired 3 d ago`;
    `-` when unknown."""
    if not msec:
        return '-'
    now_msec = now_msec if now_msec is not None else int(time.time() * 1000)
    if msec <= now_msec:
        return f'expired {ago(msec, now_msec)} ago'
    return f'{ago(now_msec, msec)} ({when(msec)[:16]})'
