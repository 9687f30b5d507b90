"""Explorations: lessons made of states, each state ending in an interaction."""

from google.cloud import ndb

from pipelines.models import base_models


class ExplorationModel(base_models.BaseModel):
    """One exploration. `states` maps a state name to its JSON dict."""

    title = ndb.StringProperty(required=True)
    category = ndb.StringProperty(indexed=True)
    objective = ndb.TextProperty(default='')
    language_code = ndb.StringProperty(default='en', indexed=True)
    init_state_name = ndb.StringProperty(required=True)
    states_schema_version = ndb.IntegerProperty(default=1, indexed=True)
    states = ndb.JsonProperty(default={}, indexed=False)
    version = ndb.IntegerProperty(default=1)
