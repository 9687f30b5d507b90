"""The project's jobs by name: the successor of `ONE_OFF_JOB_MANAGERS`.

The framework never imports a concrete job: a project names the module that
holds its registry (`--registry`, `BEAM_JOBS_REGISTRY`, or `[tool.beam-jobs]
registry` in pyproject.toml), and that module exposes either a `REGISTRY`
(a JobRegistry) or the legacy `ONE_OFF_JOB_MANAGERS` and
`AUDIT_JOB_MANAGERS` lists (a job in both is listed once).
"""

from __future__ import annotations

import difflib
import importlib
from typing import Iterable, Iterator

from beam_jobs import job_class as job_class_lib
from beam_jobs import refusals


# The lists an App Engine code base's jobs_registry.py held.
LEGACY_LISTS = ('ONE_OFF_JOB_MANAGERS', 'AUDIT_JOB_MANAGERS')


class UnknownJobError(refusals.NotFound):
    pass


class JobRegistry:
    """Job classes by name; two jobs of one name are refused."""

    def __init__(self, job_classes: Iterable[type] = ()):
        self._jobs: dict[str, type] = {}
        for job in job_classes:
            self.register(job)

    def register(self, job: type) -> type:
        """Add a job (usable as a class decorator)."""
        job_class_lib.validate(job)
        name = job_class_lib.job_name(job)
        existing = self._jobs.get(name)
        if existing is not None and existing is not job:
            raise refusals.Refused(
                f'Two jobs are named {name} ({existing.__module__} and '
                f'{job.__module__}): rename one, since runs find jobs by name.')
        self._jobs[name] = job
        return job

    def get(self, name: str) -> type:
        if name in self._jobs:
            return self._jobs[name]
        close = difflib.get_close_matches(name, self._jobs, n=3, cutoff=0.5)
        close += [known for known in self._jobs
                  if name.lower() in known.lower() and known not in close]
        hint = (f' Did you mean: {", ".join(close[:3])}?' if close
                else ' Run `beam-jobs list` to see them.')
        raise UnknownJobError(f'No job named {name!r}.{hint}')

    def names(self) -> list[str]:
        return sorted(self._jobs)

    def __iter__(self) -> Iterator[type]:
        return iter(self._jobs[name] for name in self.names())

    def __len__(self) -> int:
        return len(self._jobs)


def load(module_name: str) -> JobRegistry:
    """The registry a project's module declares."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UnknownJobError(
            f'Could not import the job registry module {module_name!r} '
            f'({error}): check --registry / BEAM_JOBS_REGISTRY and that the '
            'project is installed or on PYTHONPATH.') from error
    registry = getattr(module, 'REGISTRY', None)
    if isinstance(registry, JobRegistry):
        return registry
    legacy = [getattr(module, name) for name in LEGACY_LISTS
              if getattr(module, name, None) is not None]
    if legacy:
        return JobRegistry(job for jobs in legacy for job in jobs)
    raise UnknownJobError(
        f'Module {module_name} has neither REGISTRY (a JobRegistry) nor '
        'ONE_OFF_JOB_MANAGERS / AUDIT_JOB_MANAGERS (lists of job classes): '
        'define one of them.')
