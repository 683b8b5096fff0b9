"""Checks of a (schema-validated) config that a JSON schema cannot express; errors name the key."""

from __future__ import annotations

from .cost import Budget, CostModel
from .search import ENTROPY_OBJECTIVES, PROXY_OBJECTIVES, smallest_cost
from .space import SearchSpace


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the value given."""


def model_scale(entry: dict) -> str:
    """The scale (config ``scales``) of a ``pretrain.models`` entry: ``paper`` for a Table 8 structure, else its
    search's or naive scaling's."""
    if "structure" in entry:
        return "paper"
    return (entry.get("search") or entry["naive"]).get("scale", "pretrain")


def naive_model(config: dict, entry: dict):
    """Architecture and model-convention overrides of a ``naive`` entry (see merino.baselines)."""
    from .baselines import naive_architecture

    n, scale = entry["naive"], config["scales"][model_scale(entry)]
    cost = CostModel.from_config(scale["model"], scale["cost"])
    return naive_architecture(cost, Budget.parse(n["budget"]), n["scaling"], **config["baselines"]["naive_scaling"])


MOVED_KEYS = {  # old key -> its place in the symmetric `scales` section
    "model": "scales.paper.model",
    "cost": "scales.paper.cost",
    "search_space": "scales.paper.search_space",
    "pretrain.design": "scales.pretrain",
    "correlation.design": "scales.correlation",
}


def check_moved_keys(config: dict) -> None:
    """A configuration (before schema validation) that still uses a key moved into ``scales``: name old and new."""
    for old, new in MOVED_KEYS.items():
        section, _, key = old.rpartition(".")
        if key in ((config.get(section) or {}) if section else config):
            raise ConfigError(f"config key {old} has moved to {new}; rename it in your configuration file")


def check_base_config(path, sections) -> None:
    """The first ``--configfile`` replaces config/config.yaml as the base configuration, so it must hold every
    top-level section (``sections``, the schema's); a partial file belongs after a complete one."""
    import yaml

    with open(path) as f:
        base = yaml.safe_load(f) or {}
    missing = [s for s in sections if s not in base]
    if missing:
        raise ConfigError(
            f"config file {str(path)!r} is the base configuration (the first --configfile replaces "
            f"config/config.yaml) but lacks the sections {missing}; put a complete configuration first and layer "
            f"this one over it, e.g. --configfile config/config.yaml {path} (or config/paper.yaml {path})"
        )


def apply_design_preset(config: dict) -> None:
    """Config ``design_fit.preset``: a named set of design constants (``design_fit.presets``) replaces
    ``search.objective`` and the ``entropy`` values it names, in place, before anything reads them."""
    name, presets = config["design_fit"]["preset"], config["design_fit"]["presets"]
    if name == "none":
        return
    if name not in presets:
        raise ConfigError(
            f"config design_fit.preset={name!r} names no preset in design_fit.presets "
            f"({sorted(presets)}); use one of them or none"
        )
    config["search"]["objective"] = presets[name]["objective"]
    config["entropy"].update(presets[name]["entropy"])


def check_config(config: dict) -> None:
    """Raise :class:`ConfigError` for the first problem found, before any job runs."""
    devices = {**config["latency"]["devices"], **_datasheets(config)}  # the names latency budgets use
    scales = config["scales"]
    _check_scale(scales["paper"], "scales.paper.", config["search"]["budgets"], "search.budgets", devices)
    latency_scale = config["latency"]["scale"]
    _check_scale(
        scales[latency_scale], f"scales.{latency_scale}.", config["latency"]["budgets"], "latency.budgets", devices
    )
    _check_parents(config["search"], "search", config["search"]["selection"])
    pretrain = config["pretrain"]
    models = pretrain["models"]
    for name in pretrain["train"]:
        if name not in models:
            raise ConfigError(
                f"config pretrain.train names {name!r}, which is not in pretrain.models ({sorted(models)})"
            )
    for scale in ("pretrain", "paper"):
        budgets = {n: m["search"]["budget"] for n, m in models.items() if "search" in m and model_scale(m) == scale}
        if budgets:
            _check_scale(
                scales[scale],
                f"scales.{scale}.",
                list(budgets.values()),
                [f"pretrain.models.{n}.search.budget" for n in budgets],
                devices,
            )
    for name, entry in models.items():
        if "naive" in entry:
            try:
                naive_model(config, entry)
            except ValueError as err:
                raise ConfigError(f"config pretrain.models.{name}.naive: {err}") from None
        scale = model_scale(entry)
        _check_training(
            pretrain["training"], "pretrain.training", scales[scale]["model"], f"scales.{scale}.model (model {name})"
        )
    _check_correlation(config["correlation"], scales["correlation"])
    _check_evaluation(config)
    _check_comparisons(config)
    _check_generation(config)


def _check_generation(config: dict) -> None:
    """Cached generation (latency.generation) must fit the positions of every model it times."""
    g = config["latency"]["generation"]
    needed = g["prompt_len"] + g["new_tokens"] - 1
    scales = (
        {model_scale(m) for m in config["pretrain"]["models"].values()} if config["evaluation"]["models"] else set()
    )
    limits = {
        f"scales.{scale}.model.max_positions": config["scales"][scale]["model"]["max_positions"]
        for scale in ("paper", *sorted(scales - {"paper"}))
    }
    for key, limit in limits.items():
        if needed > limit:
            raise ConfigError(
                f"config latency.generation: prompt_len + new_tokens - 1 = {needed} positions exceed "
                f"{key} = {limit}; shorten the prompt or the generation"
            )


def _datasheets(config: dict) -> dict:
    """The datasheet devices (validated), whose names must differ from the measured devices'; Table 3's one is
    compared with the paper's Jetson latency, which needs enough paper models to fit and leave one out."""
    from .baselines import PAPER_BASELINES
    from .datasheet import EFFICIENCY_KEYS, Datasheet

    lat, sheets = config["latency"], {}
    for name, entry in lat.get("datasheets", {}).items():
        if name in lat["devices"]:
            raise ConfigError(
                f"config latency.datasheets.{name}: {name!r} is also a measured device in "
                f"latency.devices; a device is either measured or predicted, rename one"
            )
        try:
            sheets[name] = Datasheet.from_config(name, entry)
        except ValueError as err:
            raise ConfigError(str(err)) from None
    chosen = lat.get("table3_datasheet")
    if chosen is not None and chosen not in sheets:
        raise ConfigError(f"config latency.table3_datasheet={chosen!r} is not in latency.datasheets ({sorted(sheets)})")
    paper = {*lat["paper_models"], *(m for m in config["evaluation"]["models"] if m in PAPER_BASELINES)}
    if chosen is not None and len(paper) <= len(EFFICIENCY_KEYS):
        raise ConfigError(
            f"config latency.table3_datasheet={chosen!r} compares the prediction with the paper's Jetson "
            f"latency of the paper models timed ({sorted(paper)}): fitting {len(EFFICIENCY_KEYS)} "
            f"efficiency factors leaving one out needs at least {len(EFFICIENCY_KEYS) + 1}; add "
            f"latency.paper_models or set latency.table3_datasheet: null"
        )
    return sheets


def _check_evaluation(config: dict) -> None:
    from .baselines import PAPER_BASELINES

    models = config["pretrain"]["models"]
    for name in config["evaluation"]["models"]:
        if name not in models and name not in PAPER_BASELINES:
            raise ConfigError(
                f"config evaluation.models names {name!r}, which is neither in pretrain.models "
                f"({sorted(models)}) nor a paper baseline ({sorted(PAPER_BASELINES)})"
            )
    for name in config["quantization"]["models"]:
        if name not in models and name not in PAPER_BASELINES:
            raise ConfigError(
                f"config quantization.models names {name!r}, which is neither in pretrain.models "
                f"({sorted(models)}) nor a paper baseline ({sorted(PAPER_BASELINES)})"
            )
    lat = config["latency"]
    timed = [*config["evaluation"]["models"], *lat["paper_models"]]
    if lat["reference"] not in timed:
        raise ConfigError(
            f"config latency.reference={lat['reference']!r} is not timed: name one of "
            f"evaluation.models or latency.paper_models ({timed})"
        )
    if lat["table3_device"] not in lat["devices"]:
        raise ConfigError(
            f"config latency.table3_device={lat['table3_device']!r} is not in latency.devices "
            f"({sorted(lat['devices'])})"
        )


def _check_parents(search: dict, key: str, selection: str) -> None:
    """Algorithm 1's K and M: K < M for the paper's selection (K survivors refilled to M), K <= M otherwise."""
    k, m = search["parents"], search["population"]
    if k > m or (selection == "paper" and k == m):
        raise ConfigError(
            f"config {key}.parents={k!r} must be below {key}.population={m!r} (K survivors refilled to "
            "M; equal only for search.selection generational)"
        )


def _check_comparisons(config: dict) -> None:
    """Models of the comparisons exist, and each row compares what the paper's row compares."""
    c, models = config["comparisons"], config["pretrain"]["models"]
    _check_parents(c["search"], "comparisons.search", config["search"]["selection"])

    def entry(key: str, name: str, objective: tuple[str, ...] | None = None) -> dict:
        if name not in models:
            raise ConfigError(f"config {key} names {name!r}, which is not in pretrain.models ({sorted(models)})")
        e = models[name]
        if objective is not None and e.get("search", {}).get("objective") not in objective:
            raise ConfigError(
                f"config {key} names {name!r}, which must be a search with objective "
                f"{' or '.join(objective)}; pretrain.models.{name} is {e}"
            )
        return e

    for i, row in enumerate(c["fig5"]):
        for j, name in enumerate(row["models"]):
            entry(f"comparisons.fig5[{i}].models[{j}]", name)
    for i, row in enumerate(c["table4"]):
        entry(f"comparisons.table4[{i}].model", row["model"], (*ENTROPY_OBJECTIVES, *PROXY_OBJECTIVES))
    for i, row in enumerate(c["table5"]):
        shared, unshared = (entry(f"comparisons.table5[{i}].{k}", row[k]) for k in ("with", "without"))
        if (
            "search" not in shared
            or shared.get("search") != unshared.get("search")
            or unshared.get("weight_sharing", True)
            or not shared.get("weight_sharing", True)
        ):
            raise ConfigError(
                f"config comparisons.table5[{i}]: {row['with']!r} and {row['without']!r} must be the "
                f"same search, the second with weight_sharing: false (got {shared} and {unshared})"
            )
    # Table 6's rows in the paper's family (Eq. 15) or in the global one
    rows = {
        "none": ("eq15_plain", "entropy_plain"),
        "gamma": ("eq15_gamma", "entropy_gamma"),
        "gamma_alpha": ("eq15", "entropy"),
    }
    if c["table6"]:
        missing = sorted(set(rows) - set(c["table6"]))
        if missing:
            raise ConfigError(f"config comparisons.table6 lacks rows {missing} (needs none, gamma, gamma_alpha)")
        budgets = {
            entry(f"comparisons.table6.{row}", c["table6"][row], objectives)["search"]["budget"]
            for row, objectives in rows.items()
        }
        if len(budgets) > 1:
            raise ConfigError(
                f"config comparisons.table6: the three searches must share one budget, got {sorted(budgets)}"
            )


def _check_training(training: dict, key: str, model: dict, model_key: str) -> None:
    if training["batch_size"] % training["micro_batch_size"]:
        raise ConfigError(
            f"config {key}.batch_size={training['batch_size']!r} must be a multiple of "
            f"{key}.micro_batch_size={training['micro_batch_size']!r}"
        )
    if training["seq_len"] > model["max_positions"]:
        raise ConfigError(
            f"config {key}.seq_len={training['seq_len']!r} exceeds {model_key}.max_positions={model['max_positions']!r}"
        )


def _check_correlation(c: dict, scale: dict) -> None:
    _check_scale(scale, "scales.correlation.", [], [])
    model = scale["model"]
    _check_training(c["training"], "correlation.training", model, "scales.correlation.model")
    for name in ("ntk_seq_len", "dss_seq_len"):
        if c["proxies"][name] > model["max_positions"]:
            raise ConfigError(
                f"config correlation.proxies.{name}={c['proxies'][name]!r} exceeds "
                f"scales.correlation.model.max_positions={model['max_positions']!r}"
            )
    cal = c["calibration"]
    if cal["enabled"]:
        n_cal = round(cal["fraction"] * c["architectures"])
        if min(n_cal, c["architectures"] - n_cal) < 3:
            raise ConfigError(
                f"config correlation.calibration.fraction={cal['fraction']!r} splits "
                f"correlation.architectures={c['architectures']!r} into {n_cal} and "
                f"{c['architectures'] - n_cal}; each side needs at least 3 (add architectures or set "
                f"correlation.calibration.enabled: false)"
            )


def _check_scale(scale: dict, prefix: str, budgets: list[str], budget_keys, devices=()) -> None:
    """The search space and model convention of one scale (config ``scales.<name>``), and budgets searched in it."""
    head_dim = scale["model"]["head_dim"]
    try:
        space = SearchSpace.from_config(scale["search_space"], head_dim)
    except ValueError as err:
        raise ConfigError(f"config {prefix}{err}") from None
    if scale["model"]["embed_proj_dim"] % head_dim:
        raise ConfigError(
            f"config {prefix}model.embed_proj_dim={scale['model']['embed_proj_dim']!r} must be a "
            f"multiple of {prefix}model.head_dim={head_dim!r}"
        )
    try:
        cost = CostModel.from_config(scale["model"], scale["cost"])
    except ValueError as err:
        raise ConfigError(f"config {prefix}{err}") from None
    keys = budget_keys if isinstance(budget_keys, list) else [f"{budget_keys}[{i}]" for i in range(len(budgets))]
    for key, label in zip(keys, budgets):
        try:
            budget = Budget.parse(label)
        except ValueError as err:
            raise ConfigError(f"config {key}: {err}") from None
        if budget.kind == "latency":
            if budget.device not in devices:
                raise ConfigError(
                    f"config {key}={label!r} names device {budget.device!r}, which neither "
                    f"latency.devices nor latency.datasheets declares ({sorted(devices)})"
                )
            continue  # priced by the device's measured latency table; the search checks it against that
        low = smallest_cost(space, cost, budget.kind)
        if low > budget.value:
            raise ConfigError(
                f"config {key}={label!r} is below the smallest architecture of "
                f"{prefix}search_space ({low:.4g} {budget.kind}); raise it or shrink "
                f"{prefix}search_space"
            )
