"""Checks of a (schema-validated) config that a JSON schema cannot express; errors name the key."""

from __future__ import annotations

from .cost import Budget, CostModel
from .search import smallest_cost
from .space import SearchSpace


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the value given."""


def check_config(config: dict) -> None:
    """Raise :class:`ConfigError` for the first problem found, before any job runs."""
    _check_design(config, "", config["search"]["budgets"], "search.budgets")
    search = config["search"]
    if search["parents"] > search["population"]:
        raise ConfigError(f"config search.parents={search['parents']!r} exceeds search.population="
                          f"{search['population']!r}")
    pretrain = config["pretrain"]
    models = pretrain["models"]
    for name in pretrain["train"]:
        if name not in models:
            raise ConfigError(f"config pretrain.train names {name!r}, which is not in pretrain.models "
                              f"({sorted(models)})")
    for scale, key in (("pretrain", "pretrain.design."), ("paper", "")):
        design = pretrain["design"] if scale == "pretrain" else config
        budgets = {n: m["search"]["budget"] for n, m in models.items()
                   if "search" in m and m["search"].get("scale", "pretrain") == scale}
        if budgets:
            _check_design(design, key, list(budgets.values()),
                          [f"pretrain.models.{n}.search.budget" for n in budgets])
    training = pretrain["training"]
    if training["batch_size"] % training["micro_batch_size"]:
        raise ConfigError(f"config pretrain.training.batch_size={training['batch_size']!r} must be a multiple of "
                          f"pretrain.training.micro_batch_size={training['micro_batch_size']!r}")


def _check_design(design: dict, prefix: str, budgets: list[str], budget_keys) -> None:
    """The search space and model convention of one design scale, and budgets searched in it."""
    head_dim = design["model"]["head_dim"]
    try:
        space = SearchSpace.from_config(design["search_space"], head_dim)
    except ValueError as err:
        raise ConfigError(f"config {prefix}{err}") from None
    if design["model"]["embed_proj_dim"] % head_dim:
        raise ConfigError(f"config {prefix}model.embed_proj_dim={design['model']['embed_proj_dim']!r} must be a "
                          f"multiple of {prefix}model.head_dim={head_dim!r}")
    cost = CostModel.from_config(design["model"], design["cost"])
    keys = budget_keys if isinstance(budget_keys, list) else [f"{budget_keys}[{i}]" for i in range(len(budgets))]
    for key, label in zip(keys, budgets):
        try:
            budget = Budget.parse(label)
        except ValueError as err:
            raise ConfigError(f"config {key}: {err}") from None
        low = smallest_cost(space, cost, budget.kind)
        if low > budget.value:
            raise ConfigError(f"config {key}={label!r} is below the smallest architecture of the "
                              f"{prefix or 'main '}search space ({low:.4g} {budget.kind}); raise it or shrink "
                              f"{prefix}search_space")
