# Config validation, wildcard constraints and input functions shared by every stage.
import os
import re
import sys
from pathlib import Path

import yaml
from snakemake.utils import validate

# The one way every job imports the library: this checkout's src/ goes first on PYTHONPATH, which each script job
# inherits (a local job, a Slurm job that re-reads this file, torchrun's processes), so `from merino... import` in
# workflow/scripts/*.py imports this checkout even when an installed `merino` points at another clone.
SRC = str(Path(workflow.current_basedir).parents[1] / "src")  # workflow/rules/ -> the checkout
if os.environ.get("PYTHONPATH", "").split(os.pathsep)[0] != SRC:
    os.environ.update(
        PYTHONPATH=os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))
    )  # set, not required
sys.path.insert(0, SRC)  # and this file's own imports, below

from merino.baselines import PAPER_BASELINES  # noqa: E402
from merino.checks import (  # noqa: E402
    apply_design_preset,
    check_base_config,
    check_config,
    check_moved_keys,
    model_scale,
    naive_model,
)
from merino.cost import Budget  # noqa: E402
from merino.hub import check_offline_cache  # noqa: E402
from merino.optional import check_optional_dependencies  # noqa: E402
from merino.search import ENTROPY_OBJECTIVES, PROXY_OBJECTIVES  # noqa: E402

SCHEMA = Path(workflow.basedir) / "schemas" / "config.schema.yaml"
check_moved_keys(config)  # a key moved into `scales`: named, old and new, before the schema's generic error
if workflow.overwrite_configfiles:  # the first --configfile is the base (workflow/Snakefile): complete, or an error
    check_base_config(workflow.overwrite_configfiles[0], list(yaml.safe_load(SCHEMA.read_text())["properties"]))
validate(config, schema=str(SCHEMA))
apply_design_preset(config)  # design_fit.preset: its objective and entropy constants replace the config's
check_config(config)
check_optional_dependencies(config)  # a set key whose package the environment lacks: one line, before any job
# Offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE): every Hub resource the config reads (corpora, tokenizers, the
# baselines' weights, lm-eval's task data sets) must be in the local cache; a missing one stops here, before any
# job, with an error naming it and the command that stages it (merino.hub; profiles/slurm/README.md, step 4).
check_offline_cache(config)

OBJECTIVES = [*ENTROPY_OBJECTIVES, *PROXY_OBJECTIVES]
PAPER_BUDGETS = ["flops60G", "flops110G", "flops160G"]
PAPER_STRUCTURES = ["MeRino-52M", "MeRino-61M", "MeRino-64M"]

# Path templates: every file that one rule makes and others read, spelled once here ({...} are wildcards; the
# comment names the rule that makes it).  A smaller scale's copy of a paper-scale stage lives under results/<scale>/.
# The paper's tables and figures are spelled in their rules' outputs; `all` (workflow/Snakefile) names them there.
LOOKUP = {  # entropy_lookup, entropy_lookup_pretrain, entropy_lookup_correlation: the entropy lookup table (Eq. 7)
    "paper": "results/lookup/entropy_lookup.json",
    "pretrain": "results/pretrain/lookup/entropy_lookup.json",
    "correlation": "results/correlation/lookup/entropy_lookup.json",
}
SEARCH = {  # search and proxy_search (paper scale); search_pretrain and proxy_search_pretrain
    "paper": "results/search/{objective}/{budget}.json",
    "pretrain": "results/pretrain/search/{objective}/{budget}.json",
}
ARCHITECTURE = "results/architectures/{structure}.json"  # structure (a Table 8 structure)
NAIVE = "results/naive/{scale}/{scaling}/{budget}.json"  # naive (a naive-scaling GPT)
DATA = {"tokenizer": "results/data/tokenizer", "tokens": "results/data/tokens"}  # prepare_data
CORRELATION_DATA = {  # prepare_correlation_data (config correlation.data)
    "tokenizer": "results/correlation/data/tokenizer",
    "tokens": "results/correlation/data/tokens",
}
MODEL = "results/models/{model}"  # pretrain (a trained model)
TASKS = "results/tasks"  # eval_tasks (lm-eval task definitions)
EVALUATION = "results/eval/{model}"  # evaluate
TABLE1_ENTROPY = "results/tables/table1_entropy.csv"  # rule table1_entropy (completed by rule table1)
CORRELATION_ARCHITECTURE = "results/correlation/architectures/{candidate}.json"  # correlation_architecture
CORRELATION_PROXIES = "results/correlation/proxies/{candidate}.json"  # correlation_proxies
CORRELATION_MODEL = "results/correlation/models/{candidate}"  # correlation_train
LATENCY = "results/latency/{device}/latency.json"  # latency
GENERATION = "results/latency/{device}/generation.json"  # generation
LATENCY_TABLE = "results/{scale}/latency/{device}/lookup.json"  # latency_table (measured), latency_table_predicted
PREDICTOR_CHECK = "results/{scale}/latency/{device}/predictor_check.json"  # latency_check
PREDICTED = "results/latency/{device}/predicted.json"  # latency_predicted


wildcard_constraints:
    objective="|".join(OBJECTIVES),
    model=r"[A-Za-z0-9_.\-]+",
    structure="|".join(PAPER_STRUCTURES),
    budget=r"(flops|params|memory|latency)\d+(\.\d+)?[A-Za-z]+(-[A-Za-z0-9][A-Za-z0-9_.-]*)?",
    scaling="depth|width",
    scheme=r"[A-Za-z0-9_\-]+",
    scale="pretrain|paper",
    candidate=r"a\d\d\d+|table1-(wide|deep)",


def scale_settings(scale="paper"):
    """Model convention, cost convention and search space of a scale (config ``scales.<scale>``): ``paper``,
    ``pretrain`` (the scaled-down models the default trains) or ``correlation`` (the space the correlation
    study samples)."""
    return config["scales"][scale]


def lookup_settings(scale="paper"):
    """The config values a lookup table depends on (nothing else, so other edits keep it)."""
    e = config["entropy"]
    return {
        "search_space": scale_settings(scale)["search_space"],
        "head_dim": scale_settings(scale)["model"]["head_dim"],
        "entropy": {k: e[k] for k in ("init_std", "epsilon", "log_base", "draws", "max_draws", "rel_tol", "seed")},
    }


def entropy_settings(scale="paper"):
    return {**config["entropy"], "head_dim": scale_settings(scale)["model"]["head_dim"]}


def search_settings():
    """Search settings a single search depends on (not the list of budgets or the main objective)."""
    return {k: v for k, v in config["search"].items() if k not in ("budgets", "objective")}


def proxy_search_settings():
    """A proxy-driven search's settings: the entropy search's, with comparisons.search's EA size and proxies."""
    return {**search_settings(), **config["comparisons"]["search"]}


def latency_table_input(scale="paper"):
    """Input function: the device's latency table when a search's budget is a latency one."""

    def tables(wildcards):
        budget = Budget.parse(wildcards.budget)
        return {"latency": LATENCY_TABLE.format(scale=scale, device=budget.device)} if budget.kind == "latency" else {}

    return tables


def search_result(objective, budget, scale="paper"):
    return SEARCH[scale].format(objective=objective, budget=budget)


def model_entry(name):
    models = config["pretrain"]["models"]
    if name not in models:
        raise ValueError(f"model {name!r} is not defined in config pretrain.models (defined: {sorted(models)})")
    return models[name]


def model_architecture(wildcards):
    """The architecture file a model is trained from: a search result, a paper Table 8 structure or a
    naive-scaling GPT."""
    return architecture_file(wildcards.model)


def architecture_file(name):
    entry = model_entry(name)
    if "structure" in entry:
        return ARCHITECTURE.format(structure=entry["structure"])
    if "naive" in entry:
        n = entry["naive"]
        return NAIVE.format(scale=model_scale(entry), scaling=n["scaling"], budget=n["budget"])
    s = entry["search"]
    return search_result(s["objective"], s["budget"], model_scale(entry))


def model_convention(name):
    """Model section a trained model uses: its scale's (config scales: pretrain for its searches, the
    paper's for Table 8 structures), with a naive GPT's embedding width and no sharing, and an entry's own
    weight_sharing (Table 5)."""
    entry = model_entry(name)
    model = dict(scale_settings(model_scale(entry))["model"])
    if "naive" in entry:
        model.update(naive_model(config, entry)[1])
    if "weight_sharing" in entry:
        model["weight_sharing"] = entry["weight_sharing"]
    return model


def trained(name):
    """Whether a Table 2/3 row is trained here (else it is a paper baseline with Hub weights)."""
    return name in config["pretrain"]["models"]


def cost_entry(name):
    """How a Table 3 row is priced: its architecture under its conventions, or a baseline's config."""
    if trained(name):
        return {
            "architecture": architecture_file(name),
            "model": model_convention(name),
            "cost": scale_settings(model_scale(model_entry(name)))["cost"],
        }
    return {"baseline": name, "seq_len": scale_settings("paper")["cost"]["flops_seq_len"]}


def paper_names():
    """Model -> the paper's model it is compared with (an entry's `paper`, else its own name)."""
    return {n: e.get("paper", n) for n, e in config["pretrain"]["models"].items()}


def correlation_candidates():
    """The sampled architectures a000, a001, ... of the study."""
    return [f"a{i:03d}" for i in range(config["correlation"]["architectures"])]


def correlation_data():
    """Tokenizer and token cache of the study: its own (correlation.data) or the shared ones."""
    return CORRELATION_DATA if "data" in config["correlation"] else DATA


def correlation_lookup():
    """The study's lookup table: the main one when the study samples the paper's own space."""
    same = lookup_settings("correlation") == lookup_settings("paper")
    return LOOKUP["paper"] if same else LOOKUP["correlation"]


def correlation_architecture_settings(candidate):
    """What one study architecture depends on: its index, the seed and the space; Table 1's models nothing."""
    if candidate.startswith("table1-"):
        return {"table1": candidate.removeprefix("table1-")}
    c = config["correlation"]
    space = {
        "search_space": scale_settings("correlation")["search_space"],
        "head_dim": scale_settings("correlation")["model"]["head_dim"],
    }
    return {"index": int(candidate[1:]), "seed": c["seed"], **space}


def correlation_model_convention(candidate):
    """The study's model convention; Table 1's wide and deep models are plain (unshared) transformers."""
    model = dict(scale_settings("correlation")["model"])
    if candidate.startswith("table1-"):
        model["weight_sharing"] = False
    return model


def correlation_training():
    """The study's training budget, with a validation perplexity after half of it (ranking stability)."""
    training = config["correlation"]["training"]
    return {**training, "eval_steps": [training["steps"] // 2] if training["steps"] >= 2 else []}


def comparison_models(key):
    """Models a comparison of config `comparisons` (fig5, table4, table5, table6) needs, in order."""
    c = config["comparisons"][key]
    if key == "fig5":
        names = [m for row in c for m in row["models"]]
    elif key == "table4":
        names = [row["model"] for row in c]
    elif key == "table5":
        names = [row[s] for row in c for s in ("without", "with")]
    else:
        names = list(c.values())
    return list(dict.fromkeys(names))


def model_budget(name):
    """The budget label a trained model was searched or scaled for (the x axis of Fig. 5)."""
    entry = model_entry(name)
    return (entry.get("search") or entry.get("naive") or {}).get("budget", entry.get("structure"))


def comparison_evaluations(key):
    return expand(EVALUATION, model=comparison_models(key))


def comparison_architectures(key):
    """Architecture files of a comparison's models (for searched models: the search record)."""
    return [architecture_file(m) for m in comparison_models(key)]


def comparison_costs(key):
    return {m: cost_entry(m) for m in comparison_models(key)}


def main_searches():
    return [search_result(config["search"]["objective"], b) for b in config["search"]["budgets"]]


def evaluation_settings():
    """What an evaluation depends on (not the list of models)."""
    return {k: v for k, v in config["evaluation"].items() if k not in ("models", "resources")}


def evaluated_models():
    return config["evaluation"]["models"]


def table3_rows():
    """Evaluated models, then every paper model priced offline (baselines and Table 8 structures)."""
    rows = {m: cost_entry(m) for m in evaluated_models()}
    for name in PAPER_BASELINES:
        rows.setdefault(name, {"baseline": name, "seq_len": scale_settings("paper")["cost"]["flops_seq_len"]})
    for name in PAPER_STRUCTURES:
        rows.setdefault(
            name,
            {
                "architecture": ARCHITECTURE.format(structure=name),
                "model": scale_settings("paper")["model"],
                "cost": scale_settings("paper")["cost"],
            },
        )
    return rows


def device_settings(device):
    if device not in config["latency"]["devices"]:
        raise ValueError(
            f"device {device!r} is not declared in config latency.devices " f"({sorted(config['latency']['devices'])})"
        )
    return {"backend": "torch", "threads": 1, "dtype": "float32", "cpus": 1, **config["latency"]["devices"][device]}


def datasheet_settings(device):
    if device not in config["latency"]["datasheets"]:
        raise ValueError(
            f"device {device!r} is not declared in config latency.datasheets "
            f"({sorted(config['latency']['datasheets'])})"
        )
    return config["latency"]["datasheets"][device]


def prediction_protocol():
    """The protocol values a roofline prediction depends on (not the timing repeats)."""
    return {k: config["latency"]["protocol"][k] for k in ("batch_size", "seq_len", "seed")}


def names_pattern(names):
    """A wildcard constraint matching exactly these names (nothing when there are none)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


def table3_predicted_input(wildcards):
    """Input function: the predicted latency of Table 3's datasheet device, if one is chosen."""
    device = config["latency"]["table3_datasheet"]
    return {"predicted": PREDICTED.format(device=device)} if device else {}


def timed_models():
    """Every model a latency job times: the evaluated ones, then the paper's (random weights)."""
    rows = {m: cost_entry(m) for m in config["evaluation"]["models"]}
    for name in config["latency"]["paper_models"]:
        rows.setdefault(
            name,
            (
                {"baseline": name}
                if name in PAPER_BASELINES
                else {"architecture": ARCHITECTURE.format(structure=name), "model": scale_settings("paper")["model"]}
            ),
        )
    return rows


def quantization_settings(scheme):
    q = config["quantization"]
    if scheme not in q["schemes"]:
        raise ValueError(
            f"quantization scheme {scheme!r} is not in config quantization.schemes ({sorted(q['schemes'])})"
        )
    return {
        "bits": q["schemes"][scheme]["bits"],
        "group_size": q["schemes"][scheme].get("group_size", 128),
        "method": q["method"],
        "percdamp": q["percdamp"],
        "act_order": q["act_order"],
        "calibration": q["calibration"],
    }
