"""Checks of a (schema-validated) config that a JSON schema cannot express; errors name the key."""

from __future__ import annotations

from .cost import Budget, CostModel
from .search import smallest_cost
from .space import SearchSpace


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the value given."""


def check_config(config: dict) -> None:
    """Raise :class:`ConfigError` for the first problem found, before any job runs."""
    head_dim = config["model"]["head_dim"]
    try:
        space = SearchSpace.from_config(config["search_space"], head_dim)
    except ValueError as err:
        raise ConfigError(f"config {err}") from None
    if config["model"]["embed_proj_dim"] % head_dim:
        raise ConfigError(f"config model.embed_proj_dim={config['model']['embed_proj_dim']!r} must be a multiple "
                          f"of model.head_dim={head_dim!r}")
    search = config["search"]
    if search["parents"] > search["population"]:
        raise ConfigError(f"config search.parents={search['parents']!r} exceeds search.population="
                          f"{search['population']!r}")
    cost = CostModel.from_config(config["model"], config["cost"])
    for i, label in enumerate(search["budgets"]):
        try:
            budget = Budget.parse(label)
        except ValueError as err:
            raise ConfigError(f"config search.budgets[{i}]: {err}") from None
        low = smallest_cost(space, cost, budget.kind)
        if low > budget.value:
            raise ConfigError(f"config search.budgets[{i}]={label!r} is below the smallest architecture of the "
                              f"search space ({low:.4g} {budget.kind}); raise it or shrink search_space")
