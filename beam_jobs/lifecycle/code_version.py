"""Which code a rehearsal rehearsed: the commit, and the job's own source.

An approval is for a version of the job, not for its name: a job changed
after its rehearsal must be rehearsed again. The commit says where the code
came from; what the production gate compares is the hash of the file that
defines the job class, so an unrelated commit elsewhere in the code base does
not void an approval, and any change to the job's file does.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import subprocess
from typing import Optional


def source_file(job: type) -> str:
    return os.path.abspath(inspect.getsourcefile(job) or inspect.getfile(job))


def source_sha256(job: type) -> str:
    with open(source_file(job), 'rb') as source:
        return hashlib.sha256(source.read()).hexdigest()


def _git(folder: str, *args: str) -> Optional[str]:
    try:
        done = subprocess.run(['git', '-C', folder, *args], capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def of(job: type) -> dict:
    """`{'commit', 'dirty', 'source_file', 'source_sha256'}` for the job's
    code; `commit` is None outside a git checkout, and `dirty` says whether
    the job's file differs from that commit."""
    path = source_file(job)
    folder = os.path.dirname(path)
    commit = _git(folder, 'rev-parse', 'HEAD')
    dirty = bool(_git(folder, 'status', '--porcelain', '--', path)) if commit else None
    return {'commit': commit, 'dirty': dirty, 'source_file': path,
            'source_sha256': source_sha256(job)}
