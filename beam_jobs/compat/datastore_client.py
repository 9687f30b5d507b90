"""google-cloud-datastore internals, written for google-cloud-datastore 2.27.0.

- **Keys without copies.** `Key.id`, `.name`, `.kind` and `.id_or_name`
  deep-copy the key's whole path on every call, and `ndb.Key.id()` is one of
  them, so a job's `item.id` cost more than decoding its entity. `FlatKey`
  answers them from the path the key holds (`Key._path`), and `new_key`
  builds a key from its parts without `Key.__init__`'s validation and copies
  (the parts come from a protobuf the Datastore sent, already valid).
- **Meanings.** An entity keeps the stored meaning of a property (a blob that
  is text, a zlib-compressed value) in `Entity._meanings`, which
  `helpers.entity_to_protobuf` writes back; the export codec reads and sets
  them.
- **The emulator's channel.** The client talks to an emulator over
  `grpc.insecure_channel(host)` with gRPC's default 4 MiB receive limit, so a
  query page of large entities (two thousand 30 KB entities: 9 MB) failed
  with RESOURCE_EXHAUSTED. Production's channel has no such cap.
  `use_uncapped_channel` gives a client's emulator connection the same
  channel options as production's transport, by setting the client's
  GAPIC API object (`Client._datastore_api_internal`), which it otherwise
  builds on first use.
"""

from __future__ import annotations

from typing import Any, Optional

import grpc
from google.cloud import datastore
from google.cloud.datastore_v1.services.datastore import client as gapic_client
from google.cloud.datastore_v1.services.datastore.transports import grpc as gapic_grpc

from beam_jobs import compat

WRITTEN_FOR = '2.27.0'
_KEY_ATTRIBUTES = ('_flat_path', '_path', '_parent', '_project', '_namespace',
                   '_database')


def _key_has_its_attributes() -> bool:
    key = datastore.Key('Kind', 1, project='p')
    return all(hasattr(key, name) for name in _KEY_ATTRIBUTES) and \
        key._path == [{'kind': 'Kind', 'id': 1}]  # pylint: disable=protected-access


def _client_builds_its_api_lazily() -> bool:
    api = getattr(datastore.Client, '_datastore_api')
    return '_datastore_api_internal' in api.fget.__code__.co_names


compat.require('google-cloud-datastore', WRITTEN_FOR, __name__, [
    ('Key._flat_path, ._path, ._parent, ._project, ._namespace, ._database',
     _key_has_its_attributes),
    ('Entity._meanings', lambda: isinstance(datastore.Entity()._meanings, dict)),  # pylint: disable=protected-access
    ('Client._datastore_api_internal', _client_builds_its_api_lazily),
])


class FlatKey(datastore.Key):
    """A client `Key` whose getters read its path instead of copying it.

    Same values as `datastore.Key` (whose getters deep-copy `_path` and read
    its last element); this one reads that element in place. It is a `Key`
    in every other respect (`path` still returns a copy).
    """

    @property
    def kind(self):
        return self._path[-1]['kind']

    @property
    def id(self):
        return self._path[-1].get('id')

    @property
    def name(self):
        return self._path[-1].get('name')

    @property
    def id_or_name(self):
        last = self._path[-1]
        ident = last.get('id')
        return last.get('name') if ident is None else ident


def new_key(flat_path: tuple, path: list, project: str,
            namespace: Optional[str], database: Optional[str] = None,
            key_class: Any = FlatKey) -> datastore.Key:
    """A key from parts already known to be valid: `flat_path` as the client
    keeps it (`(kind, id_or_name, ...)`), `path` its `[{'kind', 'id' or
    'name'}]`. What `Key.__init__` would make, without its checks and copies."""
    key = key_class.__new__(key_class)
    key._flat_path = flat_path  # pylint: disable=protected-access
    key._path = path  # pylint: disable=protected-access
    key._parent = None  # pylint: disable=protected-access
    key._project = project  # pylint: disable=protected-access
    key._namespace = namespace  # pylint: disable=protected-access
    key._database = database  # pylint: disable=protected-access
    return key


def make_flat(key: Optional[datastore.Key]) -> None:
    """Turn a plain client key into a `FlatKey` in place (same data)."""
    if type(key) is datastore.Key:  # pylint: disable=unidiomatic-typecheck
        key.__class__ = FlatKey


def meanings(entity: datastore.Entity) -> dict:
    """The entity's stored meanings: `{name: (meaning, value)}` (the live dict)."""
    return entity._meanings  # pylint: disable=protected-access


def use_uncapped_channel(client: datastore.Client, host: str) -> datastore.Client:
    """Talk to the emulator at `host` over a channel without gRPC's 4 MiB
    message caps, as production's transport does. Returns `client`."""
    channel = grpc.insecure_channel(host, options=[
        ('grpc.max_send_message_length', -1),
        ('grpc.max_receive_message_length', -1),
    ])
    client._datastore_api_internal = gapic_client.DatastoreClient(  # pylint: disable=protected-access
        transport=gapic_grpc.DatastoreGrpcTransport(channel=channel))
    return client
