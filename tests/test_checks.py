"""Config checks (the schema, then merino.checks): each error names the key and the value.  The
workflow runs both before any job (tests/test_workflow.py checks that through Snakemake)."""

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate

from merino.checks import ConfigError, apply_design_preset, check_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


@pytest.fixture(scope="module")
def default_config():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(config, SCHEMA)
    return config


def test_the_default_config_passes(default_config):
    check_config(copy.deepcopy(default_config))


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda c: c["comparisons"]["fig5"][1]["models"].append("NTK-S999"),
            r"comparisons.fig5\[1\].models\[3\] names 'NTK-S999', which is not in pretrain.models",
        ),
        (
            lambda c: c["comparisons"]["table4"][1].update(model="GPT-depth-S110"),
            r"comparisons.table4\[1\].model names 'GPT-depth-S110', which must be a search",
        ),
        (
            lambda c: c["comparisons"]["table5"][0].update(without="MeRino-S110-unshared"),
            r"comparisons.table5\[0\]: 'MeRino-S60' and 'MeRino-S110-unshared' must be the same search",
        ),
        (
            lambda c: c["comparisons"]["table5"][0].update(without="MeRino-S60"),
            r"the second with weight_sharing: false",
        ),
        (
            lambda c: c["comparisons"]["table6"].update(none="MeRino-S110-gamma"),
            r"comparisons.table6.none names 'MeRino-S110-gamma', which must be a search with objective eq15_plain or "
            r"entropy_plain",
        ),
        (
            lambda c: c["comparisons"]["table6"].update(gamma_alpha="MeRino-S160"),
            r"comparisons.table6: the three searches must share one budget",
        ),
        (
            lambda c: c["comparisons"]["search"].update(parents=64),
            r"comparisons.search.parents=64 must be below comparisons.search.population=32",
        ),
    ],
)
def test_a_comparison_that_cannot_work_is_refused(default_config, edit, message):
    config = copy.deepcopy(default_config)
    edit(config)
    with pytest.raises(ConfigError, match=message):
        check_config(config)


@pytest.fixture(scope="module")
def tiny_config(default_config):
    config = copy.deepcopy(default_config)
    update_config(config, yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text()))
    return config


def test_a_design_preset_replaces_the_objective_and_its_constants(default_config):
    config = copy.deepcopy(default_config)
    config["design_fit"]["preset"] = "table8_fit"
    apply_design_preset(config)
    preset = default_config["design_fit"]["presets"]["table8_fit"]
    assert config["search"]["objective"] == preset["objective"]
    assert all(config["entropy"][k] == v for k, v in preset["entropy"].items())
    assert config["entropy"]["init_std"] == default_config["entropy"]["init_std"]  # the rest stays
    check_config(config)


def test_the_smoke_config_passes(tiny_config):
    config = copy.deepcopy(tiny_config)
    validate(config, SCHEMA)
    check_config(config)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"scales": {"paper": {"search_space": {"depths": [0, 1]}}}}, "depths"),
        ({"entropy": {"epsilon": -1.0}}, "epsilon"),
        ({"search": {"budgets": ["latency5ms"]}}, "budgets"),
        (
            {"scales": {"paper": {"search_space": {"embed_dim": {"min": 64, "max": 1000, "step": 64}}}}},
            "scales.paper.search_space.embed_dim",
        ),
        ({"search": {"parents": 1000}}, "search.parents=1000"),
        ({"search": {"parents": 32, "population": 32}}, r"search.parents=32 must be below search.population=32 \(K"),
        (
            {"scales": {"paper": {"search_space": {"ffn_dim": {"min": 128, "max": 512, "step": 128}}}}},
            "give ffn_ratio .* or ffn_dim .*, not both",
        ),
        ({"design_fit": {"preset": "mine"}}, r"design_fit.preset='mine' names no preset in design_fit.presets"),
        ({"pretrain": {"train": ["MeRino-XL"]}}, "pretrain.train names 'MeRino-XL'"),
        ({"pretrain": {"training": {"micro_batch_size": 3}}}, "micro_batch_size=3"),
        (
            {"pretrain": {"models": {"MeRino-S60": {"search": {"objective": "entropy", "budget": "flops0.0001G"}}}}},
            r"pretrain.models.MeRino-S60.search.budget='flops0.0001G' is below the smallest",
        ),
        ({"data": {"corpus": {"source": "web"}}}, "source"),
        ({"correlation": {"architectures": 5}}, r"calibration.fraction=0.5 splits correlation.architectures=5"),
        ({"correlation": {"proxies": {"ntk_seq_len": 1000}}}, r"correlation.proxies.ntk_seq_len=1000 exceeds"),
        ({"scales": {"correlation": {"search_space": {"depths": []}}}}, "depths"),
        (
            {"latency": {"generation": {"prompt_len": 60}}},
            r"prompt_len \+ new_tokens - 1 = 67 positions exceed "
            r"scales.pretrain.model.max_positions = 64",
        ),
        (
            {"scales": {"pretrain": {"cost": {"memory_kv_tokens": 65}}}},
            r"config scales.pretrain.cost.memory_kv_tokens = 65",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_malformed_config_is_refused_naming_the_key(tiny_config, override, message):
    """Edits of the smoke config, merged as Snakemake merges --configfile files."""
    config = copy.deepcopy(tiny_config)
    update_config(config, override)
    with pytest.raises((WorkflowError, ConfigError), match=message):  # the schema's, or ours
        validate(config, SCHEMA)
        apply_design_preset(config)
        check_config(config)


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda c: c["latency"]["datasheets"].update(cpu=c["latency"]["datasheets"]["jetson-nano"]),
            r"latency.datasheets.cpu: 'cpu' is also a measured device",
        ),
        (
            lambda c: c["latency"]["datasheets"]["jetson-nano"].update(dtype="bfloat16"),
            r"latency.datasheets.jetson-nano.dtype='bfloat16' has no peak",
        ),
        (lambda c: c["latency"].update(table3_datasheet="orin"), r"latency.table3_datasheet='orin' is not in"),
        (
            lambda c: c["latency"].update(paper_models=["MeRino-52M", "OPT-125M"]),
            r"latency.table3_datasheet='jetson-nano' compares .* needs at least 4",
        ),
        (
            lambda c: c["latency"].update(budgets=["latency30ms-orin"]),
            r"latency.budgets\[0\]='latency30ms-orin' names device 'orin', which neither latency.devices nor "
            r"latency.datasheets declares \(\['cpu', 'jetson-nano'\]\)",
        ),
    ],
)
def test_a_datasheet_device_that_cannot_work_is_refused(default_config, edit, message):
    config = copy.deepcopy(default_config)
    validate(config, SCHEMA)
    edit(config)
    with pytest.raises(ConfigError, match=message):
        check_config(config)
