"""The config schema (workflow/schemas/config.schema.yaml): its defaults are the embedded default
(config/config.yaml), every shipped configuration validates with its own values kept, and a bad value is
refused naming the key."""

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate

from merino.checks import MOVED_KEYS, ConfigError, apply_design_preset, check_config, check_moved_keys

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
RANGE = {"min": 128, "max": 512, "step": 128}


def load(path: str) -> dict:
    return yaml.safe_load((REPO / path).read_text())


def validated(config: dict) -> dict:
    config = copy.deepcopy(config)
    validate(config, SCHEMA, set_default=True)
    return config


def layered(*paths: str) -> dict:
    """The configuration Snakemake builds from ``--configfile`` files: the first, each further one merged over it."""
    config = load(paths[0])
    for path in paths[1:]:
        update_config(config, load(path))
    return config


def test_the_schema_defaults_are_the_embedded_default():
    """An empty config filled with the schema's defaults is config/config.yaml, but for correlation.data, whose
    absence has a meaning (the study reads the top-level data section)."""
    embedded = load("config/config.yaml")
    defaults = validated({})
    assert "data" not in defaults["correlation"]
    del embedded["correlation"]["data"]
    assert defaults == embedded


def test_the_embedded_default_states_every_key_the_schema_defaults():
    embedded = load("config/config.yaml")
    assert validated(embedded) == embedded


def subtree_mismatches(given, full, path=""):
    """Keys of ``given`` whose value in ``full`` differs (``full`` may hold more keys)."""
    if isinstance(given, dict) and isinstance(full, dict):
        return [
            m
            for k, v in given.items()
            for m in ([f"{path}{k}: missing"] if k not in full else subtree_mismatches(v, full[k], f"{path}{k}."))
        ]
    return [] if given == full else [f"{path[:-1]}: {given!r} became {full!r}"]


@pytest.mark.parametrize(
    "paths",
    [
        ("config/config.yaml",),
        ("config/paper.yaml",),
        ("config/config.yaml", "tests/configs/tiny.yaml"),
        ("config/paper.yaml", "tests/configs/rehearsal.yaml"),
    ],
    ids="+".join,
)
def test_every_shipped_config_validates_and_keeps_its_values(paths):
    config = layered(*paths)
    full = validated(config)
    assert subtree_mismatches(config, full) == []
    apply_design_preset(full)
    check_config(full)


def test_defaults_never_give_both_ffn_axes():
    """ffn_ratio's default is a scale's, not the key's: a scale whose search space gives ffn_dim gets no ratio
    grid beside it."""
    space = {"n_blocks": 2, "embed_dim": RANGE, "ffn_dim": RANGE, "depths": [1], "non_decreasing_width": True}
    assert (
        "ffn_ratio"
        not in validated(
            {"scales": {"paper": {**load("config/config.yaml")["scales"]["paper"], "search_space": space}}}
        )["scales"]["paper"]["search_space"]
    )
    assert "ffn_ratio" not in validated({})["scales"]["correlation"]["search_space"]
    switched = layered("config/config.yaml")
    update_config(switched, {"scales": {"paper": {"search_space": {"ffn_dim": RANGE, "ffn_ratio": None}}}})
    check_config(validated(switched))


@pytest.mark.parametrize("old, new", list(MOVED_KEYS.items()))
def test_a_key_moved_into_scales_is_refused_naming_old_and_new(old, new):
    config = layered("config/config.yaml")
    update_config(config, {old: {}} if "." not in old else {old.split(".")[0]: {old.split(".")[1]: {}}})
    with pytest.raises(ConfigError, match=rf"config key {old} has moved to {new}"):
        check_moved_keys(config)


def test_a_scale_is_given_in_full():
    """The three scales share one definition ($defs/scale) without defaults of their own: a base file that
    states a scale states all of it."""
    config = {"scales": {"pretrain": {"model": {"vocab_size": 512}}}}
    with pytest.raises(WorkflowError, match=r"'cost' is a required property"):
        validate(config, SCHEMA)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"search": {"population": "many"}}, r"'many' is not of type 'integer'[\s\S]*\['search'\]\['population'\]"),
        ({"latency": {"devices": {"cpu": {"cpus": 0}}}}, r"0 is less than the minimum of 1[\s\S]*\['cpu'\]\['cpus'\]"),
        ({"pretrain": {"training": {"warmup": 5}}}, r"'warmup' was unexpected"),
    ],
)
def test_a_wrong_value_is_refused_naming_the_key(override, message):
    config = layered("config/config.yaml")
    update_config(config, override)
    with pytest.raises(WorkflowError, match=message):
        validate(config, SCHEMA)


def test_a_base_config_without_a_training_budget_is_refused_naming_the_key():
    """The budget (steps ... eval_batches) has no shared default: pretrain.training and correlation.training
    differ; a complete base configuration states it."""
    with pytest.raises(WorkflowError, match=r"'batch_size' is a required property[\s\S]*\['training'\]"):
        validate({"pretrain": {"training": {"steps": 10}}}, SCHEMA)


KEYWORDS = {
    "$ref",
    "$defs",
    "type",
    "enum",
    "default",
    "description",
    "properties",
    "additionalProperties",
    "required",
    "items",
    "minItems",
    "uniqueItems",
    "minProperties",
    "oneOf",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
}


def schema_nodes(node, path="schema"):
    """Every subschema of ``node`` with its path (values of defaults and enums are data, not schemas)."""
    yield path, node
    for key in ("properties", "$defs"):
        for name, sub in node.get(key, {}).items():
            yield from schema_nodes(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from schema_nodes(node[key], f"{path}.{key}")
    for i, sub in enumerate(node.get("oneOf", [])):
        yield from schema_nodes(sub, f"{path}.oneOf[{i}]")


def test_every_schema_key_is_a_keyword():
    """A comma in an unquoted flow-style description (``{type: integer, description: T, mutations}``) makes YAML
    read a stray key; only JSON Schema keywords may appear."""
    schema = yaml.safe_load(Path(SCHEMA).read_text())
    stray = [
        f"{path}: {sorted(set(node) - KEYWORDS - {'$schema'})}"
        for path, node in schema_nodes(schema)
        if set(node) - KEYWORDS - {"$schema"}
    ]
    assert stray == []
