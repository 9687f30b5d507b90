"""Domain objects for explorations, built from their stored dicts."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class InteractionInstance:
    id: str | None
    customization_args: dict
    answer_groups: list

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> 'InteractionInstance':
        return cls(data['id'], data.get('customization_args', {}),
                   data.get('answer_groups', []))


@dataclasses.dataclass
class State:
    content_html: str
    interaction: InteractionInstance

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> 'State':
        content = data['content']
        html = content['html'] if isinstance(content, dict) else content
        return cls(html, InteractionInstance.from_dict(data['interaction']))


@dataclasses.dataclass
class Exploration:
    id: str
    title: str
    init_state_name: str
    states: dict[str, State]
