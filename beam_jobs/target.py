"""Which Datastore a run reads, writes and keeps its records in, and a client for it."""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

from google.auth import credentials as auth_credentials
from google.cloud import datastore

from beam_jobs import config
from beam_jobs.compat import datastore_client

NAMESPACE_ENV = 'DATASTORE_NAMESPACE'
EMULATOR_HOST_ENV = 'DATASTORE_EMULATOR_HOST'


@dataclasses.dataclass(frozen=True)
class Target:
    """A Datastore project and namespace; `emulator_host` when it is an
    emulator other than the one DATASTORE_EMULATOR_HOST names (the team's
    shared records, tried out on an emulator)."""

    project: str
    namespace: Optional[str] = None
    emulator_host: Optional[str] = None

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
        return (f'project {self.project}'
                + (f', namespace {self.namespace}' if self.namespace else '')
                + (f' (the emulator at {self.emulator_host})' if self.emulator_host else ''))


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
    host = target.emulator_host or emulator_host()
    if target.emulator_host and not emulator_host():
        # An emulator takes no credentials; without DATASTORE_EMULATOR_HOST
        # the client would look for real ones.
        made = datastore.Client(project=target.project, namespace=target.namespace,
                                credentials=auth_credentials.AnonymousCredentials())
    else:
        made = datastore.Client(project=target.project, namespace=target.namespace)
    if host:
        datastore_client.use_uncapped_channel(made, host)
    return made


SHARED_PROJECT_SETTING = 'records_project'
SHARED_EMULATOR_ENV = 'BEAM_JOBS_RECORDS_EMULATOR_HOST'
SHARED_NAMESPACE_SETTING = 'records_namespace'


def shared_records() -> Optional[Target]:
    """Where the team's shared records live (rehearsals, requests, approvals,
    gate decisions, Dataflow runs): the `records_project` setting's Datastore
    (BEAM_JOBS_RECORDS_PROJECT; `records_namespace` picks a namespace), on the
    emulator BEAM_JOBS_RECORDS_EMULATOR_HOST names if set. None when unset:
    then everything stays with the local records."""
    project = config.get(SHARED_PROJECT_SETTING)
    if not project:
        return None
    return Target(str(project), config.get(SHARED_NAMESPACE_SETTING) or None,
                  os.environ.get(SHARED_EMULATOR_ENV) or None)
