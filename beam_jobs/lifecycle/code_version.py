"""What a rehearsal rehearsed: a fingerprint of the job, compared by the gate.

An approval covers the job as it was rehearsed, not its name:

- the job class's own source (another job in the same file may change);
- the source of every module of the project the job's module imports,
  transitively (its domain objects, its models): neither the framework nor
  third-party packages nor the standard library, which the recorded
  framework version and requirements pin;
- the params it ran with.

A production run whose fingerprint differs from the approved rehearsal's is
refused, naming what differs (`differences`). The git commit and whether the
job's file had local changes are recorded beside it, for the report.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import json
import os
import pathlib
import subprocess
import sys
import sysconfig
from importlib import metadata
from typing import Any, Mapping, Optional

# beam_jobs/, two folders up from this file.
_FRAMEWORK_DIR = pathlib.Path(__file__).resolve().parents[1]
# Where installed packages and the standard library live: never the project.
_NOT_PROJECT = {pathlib.Path(path).resolve() for path in (
    sysconfig.get_paths()['stdlib'], sysconfig.get_paths()['platstdlib'],
    sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib'],
    sys.prefix, sys.base_prefix) if path}


def source_file(job: type) -> str:
    return os.path.abspath(inspect.getsourcefile(job) or inspect.getfile(job))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def source_sha256(job: type) -> str:
    with open(source_file(job), 'rb') as source:
        return _sha(source.read())


def class_sha256(job: type) -> str:
    """The sha256 of the job class's own source text."""
    return _sha(inspect.getsource(job).encode())


def _is_project_file(path: pathlib.Path) -> bool:
    if path.suffix != '.py':
        return False
    if _FRAMEWORK_DIR == path or _FRAMEWORK_DIR in path.parents:
        return False
    return not any(root == path or root in path.parents for root in _NOT_PROJECT)


def _module_file(name: str) -> Optional[pathlib.Path]:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):
        return None
    if spec is None or not spec.origin or spec.origin in ('built-in', 'frozen'):
        return None
    return pathlib.Path(spec.origin).resolve()


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> list[str]:
    """Every module name an import statement of `module` may name."""
    names = []
    package = module if is_package else module.rpartition('.')[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = package.split('.')
                parent = '.'.join(parts[:len(parts) - node.level + 1])
                base = f'{parent}.{base}' if base else parent
            names.append(base)
            names += [f'{base}.{alias.name}' for alias in node.names]
    return [name for name in names if name]


def project_modules(module_name: str) -> dict[str, str]:
    """`{module: sha256 of its file}` of every project module `module_name`
    imports, transitively (itself not included)."""
    found: dict[str, str] = {}
    todo = [module_name]
    seen = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        if path is None or not _is_project_file(path):
            continue
        data = path.read_bytes()
        if name != module_name:
            found[name] = _sha(data)
        try:
            tree = ast.parse(data)
        except SyntaxError:
            continue
        todo += _imported_names(tree, name, path.name == '__init__.py')
    return dict(sorted(found.items()))


def framework_version() -> str:
    try:
        return metadata.version('beam-jobs')
    except metadata.PackageNotFoundError:
        return 'unknown'


def params_of(params: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """The params a fingerprint covers: a run's own (not `dry_run`, which
    the gate never sees: a dry run writes nothing)."""
    return {key: value for key, value in sorted((params or {}).items())
            if key != 'dry_run'}


def fingerprint(job: type, params: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    return {'job': job.__name__, 'class_sha256': class_sha256(job),
            'modules': project_modules(job.__module__),
            'params': json.loads(json.dumps(params_of(params), sort_keys=True, default=str)),
            'framework': framework_version()}


def differences(rehearsed: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """What differs between a rehearsed fingerprint and today's, one phrase
    each (empty when they match)."""
    found = []
    if rehearsed.get('class_sha256') != now.get('class_sha256'):
        found.append(f'the source of {now.get("job")} itself changed')
    before, after = rehearsed.get('modules') or {}, now.get('modules') or {}
    for name in sorted(set(before) | set(after)):
        if name not in after:
            found.append(f'it no longer imports module {name}')
        elif name not in before:
            found.append(f'it now imports module {name}, which was not rehearsed')
        elif before[name] != after[name]:
            found.append(f'module {name} changed')
    params_before, params_after = rehearsed.get('params') or {}, now.get('params') or {}
    for key in sorted(set(params_before) | set(params_after)):
        if params_before.get(key, '<unset>') != params_after.get(key, '<unset>'):
            found.append(f'param {key} is {json.dumps(params_after.get(key))} here, '
                         f'{json.dumps(params_before.get(key))} in the rehearsal')
    return found


def _git(folder: str, *args: str) -> Optional[str]:
    try:
        done = subprocess.run(['git', '-C', folder, *args], capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def of(job: type, params: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """`{'commit', 'dirty', 'source_file', 'source_sha256', 'fingerprint'}`
    for the job's code; `commit` is None outside a git checkout, and `dirty`
    says whether the job's file differs from that commit."""
    path = source_file(job)
    folder = os.path.dirname(path)
    commit = _git(folder, 'rev-parse', 'HEAD')
    dirty = bool(_git(folder, 'status', '--porcelain', '--', path)) if commit else None
    return {'commit': commit, 'dirty': dirty, 'source_file': path,
            'source_sha256': source_sha256(job), 'fingerprint': fingerprint(job, params)}
