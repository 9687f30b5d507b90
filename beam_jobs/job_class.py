"""What makes a class a job, and what job code can see while it runs.

Kept apart from `jobs.py` so the transforms can check a job and hand it its
parameters without importing the lifecycle that runs pipelines.
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
import time
from typing import Any, Mapping, Optional, Sequence, Type, cast

from google.cloud import ndb

from beam_jobs import refusals
from beam_jobs.compat import ndb as ndb_compat


class InvalidJobError(refusals.Refused, TypeError):
    """A job class that cannot be compiled into a pipeline."""


_REQUIRED = (
    ('entity_classes_to_map_over',
     'a @classmethod returning the ndb model classes to map over'),
    ('map', 'a @staticmethod map(item) that yields (key, value) pairs'),
    ('reduce', 'a @staticmethod reduce(key, values) that yields output lines'),
)


# A job class: `entity_classes_to_map_over`, `map`, `reduce` (and maybe
# `combine`), as `validate` checks them; user code, so not typed further.
JobClass = Any


def job_name(job_class: type) -> str:
    return job_class.__name__


# Every job class this process has checked, by name: whoever later meets a
# run record of it (to call its hooks) finds the class here first.
_SEEN: dict[str, type] = {}


def seen_job(name: str) -> Optional[type]:
    return _SEEN.get(name)


def remember(job_class: type) -> None:
    """Note a job class whose runs this process reads (see seen_job)."""
    _SEEN[job_name(job_class)] = job_class


def _is_defined(job_class: type, name: str) -> bool:
    attr = getattr(job_class, name, None)
    return callable(attr) and not getattr(attr, '__isabstractjobmethod__', False)


def validate(job_class: JobClass) -> Sequence[Type[ndb.Model]]:
    """Refuse a class that cannot run, before any pipeline is built.

    Returns the model classes it maps over, so callers check once and use the
    checked list.
    """
    if not isinstance(job_class, type):
        raise InvalidJobError(
            f'{job_class!r} is not a job class: pass the class itself, not an '
            'instance or a name.')
    name = job_name(job_class)
    for attr, what in _REQUIRED:
        if not _is_defined(job_class, attr):
            raise InvalidJobError(f'{name} has no {attr}: define {what}.')
    models = cast(Any, job_class).entity_classes_to_map_over()
    if isinstance(models, type) or not isinstance(models, (list, tuple)):
        raise InvalidJobError(
            f'{name}.entity_classes_to_map_over() returned {models!r}: return '
            'a list of ndb model classes, e.g. [MyModel].')
    if not models:
        raise InvalidJobError(
            f'{name}.entity_classes_to_map_over() returned an empty list: name '
            'at least one ndb model class to map over.')
    _validate_combine(job_class, name)
    kinds = set()
    for model in models:
        if not (isinstance(model, type) and issubclass(model, ndb.Model)):
            raise InvalidJobError(
                f'{name}.entity_classes_to_map_over() returned {model!r}, which '
                'is not a google.cloud.ndb model class: return classes that '
                'subclass ndb.Model.')
        kind = ndb_compat.kind_of(model)
        if kind in kinds:
            raise InvalidJobError(
                f'{name}.entity_classes_to_map_over() names kind {kind!r} '
                'twice: list each model class once.')
        kinds.add(kind)
    remember(job_class)
    return list(models)


def kinds(job_class: JobClass) -> list[str]:
    """The kinds a (checked) job maps over, in its order."""
    return [ndb_compat.kind_of(model) for model in job_class.entity_classes_to_map_over()]


def has_combine(job_class: type) -> bool:
    """Whether the job declares the optional `combine(key, values)` step."""
    return getattr(job_class, 'combine', None) is not None


def _validate_combine(job_class: JobClass, name: str) -> None:
    if not has_combine(job_class):
        return
    combine = job_class.combine
    what = ('define combine as a @staticmethod combine(key, values) that '
            'yields values, or leave it out')
    if not callable(combine):
        raise InvalidJobError(f'{name}.combine is not callable: {what}.')
    try:
        inspect.signature(combine).bind('key', [])
    except TypeError:
        raise InvalidJobError(
            f'{name}.combine cannot be called as combine(key, values): '
            f'{what}.') from None
    except ValueError:
        pass  # a builtin without a signature: trust it


def abstract_job_method(func):
    """Marks a base-class placeholder so `validate` treats it as missing."""
    func.__isabstractjobmethod__ = True
    return func


# Parameters the framework gives every run, as App Engine MapReduce's mapper
# params did: a job's own params may not shadow them.
ENTITY_KINDS_PARAM = 'entity_kinds'
QUEUED_TIME_PARAM = 'queued_time_msecs'
FRAMEWORK_PARAMS = (ENTITY_KINDS_PARAM, QUEUED_TIME_PARAM)


def check_params(params: Mapping[str, Any]) -> None:
    """Refuse params a run cannot take, before it starts."""
    if not isinstance(params, Mapping):
        raise refusals.Refused(f'Job params must be a dict of name to value, not '
                               f'{params!r}.')
    for name in params:
        if not isinstance(name, str) or not name:
            raise refusals.Refused(f'Job param names must be non-empty strings, not {name!r}.')
        if name in FRAMEWORK_PARAMS:
            raise refusals.Refused(
                f'Job param {name!r} shadows a parameter the framework sets for '
                'every run: rename it.')


def with_framework_params(job: type, params: Mapping[str, Any],
                          queued_msec: Optional[int] = None) -> dict:
    """`params` plus what the framework tells every run (see FRAMEWORK_PARAMS)."""
    full = dict(params)
    full.setdefault(ENTITY_KINDS_PARAM, kinds(job))
    full.setdefault(QUEUED_TIME_PARAM, queued_msec or int(time.time() * 1000))
    return full


# The parameters of the run whose job code this thread is executing.
_current = threading.local()


class mapper_params:  # pylint: disable=invalid-name
    """Context manager that makes `params` visible to `get_mapper_param`."""

    def __init__(self, params: Optional[Mapping[str, Any]]):
        self._params = dict(params or {})

    def __enter__(self):
        self._saved = getattr(_current, 'params', None)
        _current.params = self._params

    def __exit__(self, *exc_info):
        _current.params = self._saved


def get_mapper_param(name: str) -> Any:
    params = getattr(_current, 'params', None)
    if params is None:
        raise RuntimeError(
            'get_mapper_param() works only inside map or reduce while a job '
            'runs.')
    if name not in params:
        known = ', '.join(sorted(params)) or 'none'
        raise KeyError(
            f'No job parameter {name!r} (given: {known}); pass it with '
            f'additional_job_params or `--param {name}=VALUE`.')
    return params[name]


@dataclasses.dataclass(frozen=True)
class Put:
    """Yielded by `map`: write this model (the run's dry-run reports it)."""

    model: ndb.Model


@dataclasses.dataclass(frozen=True)
class Delete:
    """Yielded by `map`: delete the entity with this key (or this model's)."""

    key: Any

    def ndb_key(self) -> ndb.Key:
        return self.key.key if isinstance(self.key, ndb.Model) else self.key
