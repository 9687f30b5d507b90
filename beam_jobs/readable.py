"""How times and durations read, the same in the CLI, the console and reports."""

from __future__ import annotations

import datetime
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
