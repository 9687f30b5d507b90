"""What every record store shares: one kind of entity in one Datastore target.

A store saves, loads and lists plain records; it never calls a service or
user code (the lifecycle does that).
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from typing import Any, Callable, Optional, TypeVar

from google.cloud import datastore

from beam_jobs import target as target_lib


def now_msec() -> int:
    return int(time.time() * 1000)


def new_id(prefix: str) -> str:
    """`PREFIX-MSEC-RANDOM`: unique, and sorted by time within a prefix."""
    return f'{prefix}-{now_msec()}-{random.randint(0, 999_999):06d}'


class EntityStore:
    """Records of one kind (`KIND`) in one Datastore target."""

    KIND = ''
    # What a missing record is, and the command that lists the right ids.
    NOUN = 'record'
    LIST_COMMAND = ''

    def __init__(self, target: target_lib.Target):
        self.target = target
        self._client = target_lib.client(target)

    def _key(self, name: str) -> datastore.Key:
        key: datastore.Key = self._client.key(self.KIND, name)
        return key

    def _get_entity(self, name: str) -> datastore.Entity:
        entity: Optional[datastore.Entity] = self._client.get(self._key(name))
        if entity is None:
            raise self.missing(name)
        return entity

    def get(self, name: str) -> Any:
        """The record named `name` (each store loads its own kind)."""
        raise NotImplementedError

    def missing(self, name: str) -> LookupError:
        """The error for a record that is not there (subclasses name theirs)."""
        return LookupError(
            f'No {self.NOUN} {name!r} in {self.target.describe()}'
            + (f': check the id with `{self.LIST_COMMAND}`.' if self.LIST_COMMAND else '.'))

    def change(self, name: str, change: Callable[[Any], None]) -> Any:
        """The record named `name`, changed by `change(record)` (which may
        raise to refuse) and saved, in one transaction."""
        with self._client.transaction():
            record = self.get(name)
            change(record)
            self._client.put(record.to_entity(self._client))
        return record

    def _query(self, **filters: Any) -> datastore.Query:
        query: datastore.Query = self._client.query(kind=self.KIND)
        for name, value in filters.items():
            query.add_filter(filter=datastore.query.PropertyFilter(name, '=', value))
        return query

    def _newest(self, limit: Optional[int], time_field: str,
                **filters: Any) -> list[datastore.Entity]:
        """Entities newest first. With a filter, sorted here (no composite
        index needed); without, by the Datastore."""
        query = self._query(**filters)
        if filters:
            found = sorted(query.fetch(), key=lambda e: e.get(time_field) or 0,
                           reverse=True)
            return found[:limit] if limit is not None else found
        query.order = [f'-{time_field}']
        return list(query.fetch(limit=limit))


_Record = TypeVar('_Record', bound='BodyRecord')


class BodyRecord:
    """A record (a dataclass) stored as its queried fields, indexed, plus one
    unindexed JSON text of everything else: no 1,500-byte limit, no index
    bloat. Subclasses name `KIND`, `ID_FIELD` and `INDEXED`."""

    KIND: str = ''
    ID_FIELD: str = ''
    INDEXED: tuple[str, ...] = ()

    def indexed_extras(self) -> dict[str, Any]:
        """More indexed values derived from the record (none by default)."""
        return {}

    def to_entity(self, client: datastore.Client) -> datastore.Entity:
        values = dataclasses.asdict(self)  # type: ignore[call-overload]  # subclasses are dataclasses
        name = values.pop(self.ID_FIELD)
        entity = datastore.Entity(client.key(self.KIND, name),
                                  exclude_from_indexes=('body_json',))
        entity.update({field: values[field] for field in self.INDEXED if field in values})
        entity.update(self.indexed_extras())
        entity['body_json'] = json.dumps(
            {k: v for k, v in values.items() if k not in self.INDEXED}, sort_keys=True)
        return entity

    @classmethod
    def from_entity(cls: type[_Record], entity: datastore.Entity) -> _Record:
        values = json.loads(entity.get('body_json') or '{}')
        values.update({field: entity.get(field) for field in cls.INDEXED})
        known = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
        values[cls.ID_FIELD] = entity.key.name
        return cls(**{k: v for k, v in values.items() if k in known})
