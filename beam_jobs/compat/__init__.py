"""Where beam-jobs uses a library's private internals: one module per library.

    ndb.py               google-cloud-ndb: models built from stored values,
                         the current context switched cheaply
    datastore_client.py  google-cloud-datastore: keys built without copies,
                         entity meanings, the emulator's channel
    argparse.py          the standard library's argparse: a parser's flags
    beam.py              Apache Beam: a state sampler left running by a
                         stop, found through its thread and stopped

Each module names every internal it uses in one list and checks them all when
it is imported, so a library upgrade that removes or renames one fails at
once, with one sentence naming the internal and the version the module was
written for, instead of a wrong result somewhere in a run. Nothing outside
this package touches a private name of another library (tests/test_compat.py
checks that).
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Callable, Sequence


class CompatError(ImportError):
    """A library no longer has an internal beam-jobs relies on."""


def version_of(distribution: str) -> str:
    if distribution == 'python':
        return platform.python_version()
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return 'unknown'


def require(distribution: str, written_for: str, module: str,
            checks: Sequence[tuple[str, Callable[[], object]]]) -> None:
    """Run each `(internal, check)`; the first that fails (returns false or
    raises) is a CompatError naming it. `module` is the compat module to
    adapt."""
    for internal, check in checks:
        try:
            present = bool(check())
        except Exception:  # pylint: disable=broad-except
            present = False
        if not present:
            raise CompatError(
                f'beam-jobs uses {distribution}\'s internal `{internal}`, which '
                f'the installed {distribution} {version_of(distribution)} does '
                f'not have as expected (beam-jobs was written for {written_for}): '
                f'install {distribution}=={written_for}, or adapt {module} to '
                'the new version.')
