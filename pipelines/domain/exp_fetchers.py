"""Turning stored exploration models into domain objects."""

from pipelines.domain import exp_domain
from pipelines.models import exp_models


def get_exploration_from_model(
        model: exp_models.ExplorationModel) -> exp_domain.Exploration:
    return exp_domain.Exploration(
        id=model.id,
        title=model.title,
        init_state_name=model.init_state_name,
        states={name: exp_domain.State.from_dict(state)
                for name, state in model.states.items()})
