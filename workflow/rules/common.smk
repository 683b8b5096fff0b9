# Config validation, wildcard constraints and input functions shared by every stage.
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from merino.checks import check_config  # noqa: E402

validate(config, schema="../schemas/config.schema.yaml")
check_config(config)

OBJECTIVES = ["entropy", "entropy_gamma", "entropy_plain"]
PAPER_BUDGETS = ["flops60G", "flops110G", "flops160G"]


wildcard_constraints:
    objective="|".join(OBJECTIVES),
    budget=r"(flops|params|memory)\d+(\.\d+)?[A-Z]+",


def lookup_settings():
    """The config values the lookup table depends on (nothing else, so other edits keep it)."""
    e = config["entropy"]
    return {
        "search_space": config["search_space"],
        "head_dim": config["model"]["head_dim"],
        "entropy": {k: e[k] for k in ("init_std", "epsilon", "log_base", "draws", "max_draws", "rel_tol", "seed")},
    }


def entropy_settings():
    return {**config["entropy"], "head_dim": config["model"]["head_dim"]}


def search_settings():
    """Search settings a single search depends on (not the list of budgets or the main objective)."""
    return {k: v for k, v in config["search"].items() if k not in ("budgets", "objective")}


def search_result(objective, budget):
    return f"results/search/{objective}/{budget}.json"


def main_searches():
    return [search_result(config["search"]["objective"], b) for b in config["search"]["budgets"]]


def all_targets():
    return [
        "results/lookup/entropy_lookup.json",
        *main_searches(),
        "results/tables/table8.csv",
        "results/tables/table1_entropy.csv",
        "figures/fig2_lookup_error.pdf",
    ]
