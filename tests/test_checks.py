"""Config checks of the comparisons (Fig. 5, Tables 4-6): each error names the key and the value."""
import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from merino.checks import ConfigError, check_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def default_config():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def test_the_default_config_passes(default_config):
    check_config(copy.deepcopy(default_config))


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["comparisons"]["fig5"][1]["models"].append("NTK-S999"),
     r"comparisons.fig5\[1\].models\[3\] names 'NTK-S999', which is not in pretrain.models"),
    (lambda c: c["comparisons"]["table4"][1].update(model="GPT-depth-S110"),
     r"comparisons.table4\[1\].model names 'GPT-depth-S110', which must be a search"),
    (lambda c: c["comparisons"]["table5"][0].update(without="MeRino-S110-unshared"),
     r"comparisons.table5\[0\]: 'MeRino-S60' and 'MeRino-S110-unshared' must be the same search"),
    (lambda c: c["comparisons"]["table5"][0].update(without="MeRino-S60"),
     r"the second with weight_sharing: false"),
    (lambda c: c["comparisons"]["table6"].update(none="MeRino-S110-gamma"),
     r"comparisons.table6.none names 'MeRino-S110-gamma', which must be a search with objective entropy_plain"),
    (lambda c: c["comparisons"]["table6"].update(gamma_alpha="MeRino-S160"),
     r"comparisons.table6: the three searches must share one budget"),
    (lambda c: c["comparisons"]["search"].update(parents=64),
     r"comparisons.search.parents=64 exceeds comparisons.search.population=32"),
])
def test_a_comparison_that_cannot_work_is_refused(default_config, edit, message):
    config = copy.deepcopy(default_config)
    edit(config)
    with pytest.raises(ConfigError, match=message):
        check_config(config)
