"""Which Datastore a run reads, writes and keeps its records in, and a client for it."""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

from google.cloud import datastore

from beam_jobs.compat import datastore_client

NAMESPACE_ENV = 'DATASTORE_NAMESPACE'
EMULATOR_HOST_ENV = 'DATASTORE_EMULATOR_HOST'


@dataclasses.dataclass(frozen=True)
class Target:
    """A Datastore project and namespace."""

    project: str
    namespace: Optional[str] = None

    @classmethod
    def from_environment(cls, project: Optional[str] = None,
                         namespace: Optional[str] = None) -> 'Target':
        """Flags win; then the emulator's variables; then Google's defaults."""
        project = (project or os.environ.get('DATASTORE_PROJECT_ID')
                   or os.environ.get('GOOGLE_CLOUD_PROJECT'))
        if not project:
            raise ValueError(
                'No Datastore project is set: pass --project, or set '
                'DATASTORE_PROJECT_ID (or DATASTORE_EMULATOR_HOST to use the '
                'local emulator).')
        return cls(project, namespace or os.environ.get(NAMESPACE_ENV) or None)

    def describe(self) -> str:
        """`project P` or `project P, namespace N`, as sentences name it."""
        return f'project {self.project}' + (f', namespace {self.namespace}'
                                            if self.namespace else '')


def emulator_host() -> Optional[str]:
    return os.environ.get(EMULATOR_HOST_ENV) or None


def is_emulator() -> bool:
    return emulator_host() is not None


def client(target: Target) -> datastore.Client:
    """A Datastore client for `target`: every read and write of records, and
    the framework's own reads of data, go through one of these.

    The client finds the emulator (and refuses explicit credentials for it)
    by itself, and the default credentials otherwise. On the emulator its
    channel takes messages of any size, as production's does: a query page
    of large entities is far over gRPC's default 4 MiB.
    """
    made = datastore.Client(project=target.project, namespace=target.namespace)
    host = emulator_host()
    if host:
        datastore_client.use_uncapped_channel(made, host)
    return made
