"""The base every stored model shares, as App Engine code bases had it."""

import datetime

from google.cloud import ndb


class BaseModel(ndb.Model):
    """Soft-deletable model with timestamps; its key name is its id.

    Timestamps are set by `update_timestamps()`, not `auto_now`, so a job (or
    a reload of sample data) that rewrites a model unchanged leaves it the
    same.
    """

    deleted = ndb.BooleanProperty(indexed=True, default=False)
    created_on = ndb.DateTimeProperty(indexed=True)
    last_updated = ndb.DateTimeProperty(indexed=True)

    @property
    def id(self) -> str:
        return self.key.id()

    def update_timestamps(self, update_last_updated_time: bool = True) -> None:
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        if self.created_on is None:
            self.created_on = now
        if update_last_updated_time or self.last_updated is None:
            self.last_updated = now
