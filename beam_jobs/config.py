"""Settings that rarely change, so nobody retypes them.

Read from `[tool.beam-jobs]` in the nearest pyproject.toml (this folder or a
parent), each overridable by an environment variable `BEAM_JOBS_<NAME>`
(upper case, dashes as underscores). Command-line flags win over both.
"""

from __future__ import annotations

import os
import pathlib
import tomllib
from typing import Any, Optional

from beam_jobs import refusals

_SECTION = 'beam-jobs'


def _pyproject(start: Optional[pathlib.Path] = None) -> Optional[pathlib.Path]:
    folder = (start or pathlib.Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        path = candidate / 'pyproject.toml'
        if path.exists():
            return path
    return None


def project_dir() -> Optional[pathlib.Path]:
    """The folder of the nearest pyproject.toml: the project being run."""
    path = _pyproject()
    return path.parent if path else None


def file_settings() -> dict[str, Any]:
    path = _pyproject()
    if path is None:
        return {}
    with open(path, 'rb') as handle:
        try:
            data = tomllib.load(handle)
        except tomllib.TOMLDecodeError as error:
            raise refusals.Refused(f'{path} is not valid TOML ({error}): fix it so '
                                   'beam-jobs can read its settings.') from error
    return dict(data.get('tool', {}).get(_SECTION, {}))


def env_name(name: str) -> str:
    return 'BEAM_JOBS_' + name.upper().replace('-', '_')


def get(name: str, default: Any = None) -> Any:
    """One setting: environment first, then pyproject.toml, then `default`."""
    if env_name(name) in os.environ:
        return os.environ[env_name(name)]
    return file_settings().get(name, default)
