"""Which Datastore a run reads, writes and keeps its records in, and a client for it."""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

from google.api_core import exceptions as api_exceptions
from google.auth import credentials as auth_credentials
from google.cloud import datastore

from beam_jobs import config
from beam_jobs import refusals
from beam_jobs.compat import datastore_client

NAMESPACE_ENV = 'DATASTORE_NAMESPACE'
DATABASE_ENV = 'DATASTORE_DATABASE'
DATABASE_SETTING = 'database'
EMULATOR_HOST_ENV = 'DATASTORE_EMULATOR_HOST'


@dataclasses.dataclass(frozen=True)
class Target:
    """A Datastore project, namespace and database (None: the project's
    `(default)` database, as Firestore in Datastore mode names it);
    `emulator_host` when it is an emulator other than the one
    DATASTORE_EMULATOR_HOST names (the team's shared records, tried out on an
    emulator)."""

    project: str
    namespace: Optional[str] = None
    emulator_host: Optional[str] = None
    database: Optional[str] = None

    @classmethod
    def from_environment(cls, project: Optional[str] = None,
                         namespace: Optional[str] = None,
                         database: Optional[str] = None) -> 'Target':
        """Flags win; then the emulator's variables (and the `database`
        setting); then Google's defaults."""
        project = (project or os.environ.get('DATASTORE_PROJECT_ID')
                   or os.environ.get('GOOGLE_CLOUD_PROJECT'))
        if not project:
            raise refusals.Refused(
                'No Datastore project is set: pass --project, or set '
                'DATASTORE_PROJECT_ID (or DATASTORE_EMULATOR_HOST to use the '
                'local emulator).')
        return cls(project, namespace or os.environ.get(NAMESPACE_ENV) or None,
                   database=run_database(database))

    def describe(self) -> str:
        """`project P` or `project P, database D, namespace N`, as sentences
        name it."""
        return (f'project {self.project}'
                + (f', database {self.database}' if self.database else '')
                + (f', namespace {self.namespace}' if self.namespace else '')
                + (f' (the emulator at {self.emulator_host})' if self.emulator_host else ''))


def run_database(database: Optional[str] = None) -> Optional[str]:
    """The database a command uses: the one given (`--database`), else
    DATASTORE_DATABASE, else the `database` setting; None (or `(default)`)
    is the project's default database."""
    database = (database or os.environ.get(DATABASE_ENV)
                or config.get(DATABASE_SETTING) or None)
    return None if database in (None, '', DEFAULT_DATABASE) else str(database)


DEFAULT_DATABASE = '(default)'


def database_name(database: Optional[str]) -> str:
    """How people and records name a database: `(default)` for None."""
    return database or DEFAULT_DATABASE


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
    if target.database and host:
        _check_keeps_databases(host, target)
    if target.emulator_host and not emulator_host():
        # An emulator takes no credentials; without DATASTORE_EMULATOR_HOST
        # the client would look for real ones.
        made = datastore.Client(project=target.project, namespace=target.namespace,
                                database=target.database,
                                credentials=auth_credentials.AnonymousCredentials())
    else:
        made = datastore.Client(project=target.project, namespace=target.namespace,
                                database=target.database)
    if host:
        datastore_client.use_uncapped_channel(made, host)
    return made


# Emulators found to keep databases apart (True) or not (False), by host.
_KEEPS_DATABASES: dict = {}
FIRESTORE_EMULATOR_START = ('gcloud emulators firestore start '
                            '--database-mode=datastore-mode --host-port=localhost:PORT')


def _check_keeps_databases(host: str, target: Target) -> None:
    """Refuse a named database on an emulator that does not keep databases
    apart. The Cloud Datastore emulator takes a database id and ignores it in
    queries (a query of one database returns another's entities), so a run
    there would read and write the wrong data; the Firestore emulator in
    Datastore mode keeps them apart. It is told by what it refuses: kind
    queries (`__kind__`), which the Datastore emulator serves."""
    keeps = _KEEPS_DATABASES.get(host)
    if keeps is None:
        probe = client(Target(target.project, emulator_host=target.emulator_host))
        query = probe.query(kind='__kind__')
        query.keys_only()
        try:
            list(query.fetch(limit=1, retry=None, timeout=10))
            keeps = False
        except api_exceptions.InvalidArgument as error:
            keeps = 'Datastore Mode emulator' in str(error)
        _KEEPS_DATABASES[host] = keeps
    if not keeps:
        raise refusals.Refused(
            f'Database {target.database} was asked for, but the emulator at {host} '
            'is the Cloud Datastore emulator, which does not keep databases apart '
            '(a query in one returns the entities of another): start the Firestore '
            f'emulator in Datastore mode (`{FIRESTORE_EMULATOR_START}`, or '
            '`beam-jobs emulator start --firestore`) and point DATASTORE_EMULATOR_HOST '
            'at it, or leave --database out.')


# Where a project's databases are listed (Firestore's admin API); the
# setting points tests at a stand-in.
FIRESTORE_ENDPOINT_SETTING = 'firestore_endpoint'
FIRESTORE_API = 'https://firestore.googleapis.com'


def database_ids(project: str) -> Optional[list[str]]:
    """The databases of `project` (`(default)` among them), from Firestore's
    admin API; None where they cannot be listed (no permission, no network):
    then nothing is refused, and a missing one fails the run's first read."""
    import google.auth  # pylint: disable=import-outside-toplevel
    from google.auth.transport import requests as auth_requests  # pylint: disable=import-outside-toplevel
    endpoint = str(config.get(FIRESTORE_ENDPOINT_SETTING) or FIRESTORE_API).rstrip('/')
    try:
        credentials = (auth_credentials.AnonymousCredentials()
                       if endpoint != FIRESTORE_API else google.auth.default()[0])
        answer = auth_requests.AuthorizedSession(credentials).get(
            f'{endpoint}/v1/projects/{project}/databases', timeout=10)
        answer.raise_for_status()
        return sorted(str(found['name']).rsplit('/', 1)[-1]
                      for found in answer.json().get('databases') or [])
    except Exception:  # pylint: disable=broad-except
        return None


def check_database_exists(project: str, database: Optional[str]) -> None:
    """Refuse a named database `project` does not have, naming those it has
    (where they can be listed: not on an emulator, where any id exists)."""
    if not database or is_emulator():
        return
    found = database_ids(project)
    if found is not None and database not in found:
        raise refusals.Refused(
            f'Project {project} has no database {database}: its databases are '
            f'{", ".join(found) or "none"}. Fix --database (or the `database` setting).')


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
