"""Dependencies follow what the default DAG runs: every third-party module that src/ or workflow/ imports (at module
level or inside a function) maps, through importlib.metadata.packages_distributions(), to a base dependency of
pyproject.toml, or it is an optional dependency (merino.optional) that names its extra and the config key that reaches
it; such a key set with the package missing stops the run in one line.  CI's bare install (.ci/bare-run) proves the
rest: the tiny DAG through every rule after exactly `pip install -e .`."""

import re
import tomllib
from importlib import metadata

import pytest
import yaml
from imports import REPO, python_imports, snakemake_imports, third_party_imports

from merino.optional import OPTIONAL_DEPENDENCIES, OptionalDependency, check_optional_dependencies

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return canonical(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement).group(0))


BASE = {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
EXTRAS = {
    extra: {requirement_name(r) for r in reqs} for extra, reqs in PYPROJECT["project"]["optional-dependencies"].items()
}


def test_the_scan_finds_imports_at_every_depth_and_in_snakemake_files():
    source = "import os, numpy.linalg\nfrom pandas import DataFrame\ndef f():\n    import onnxruntime as ort\n"
    assert python_imports(source + "from .cost import Budget\n") == [
        ("os", 1),
        ("numpy", 1),
        ("pandas", 2),
        ("onnxruntime", 4),
    ]
    smk = 'import yaml\nfrom snakemake.utils import validate\nrule a:\n    shell: "import x"\n'
    assert snakemake_imports(smk) == [("yaml", 1), ("snakemake", 2)]
    modules = third_party_imports()
    assert {"torch", "transformers", "onnxruntime", "lm_eval", "snakemake", "yaml"} <= set(modules)
    assert "merino" not in modules and "json" not in modules
    assert any(place.startswith("workflow/rules/common.smk:") for place in modules["yaml"])


def test_every_third_party_import_is_a_base_dependency_or_optional():
    distributions = metadata.packages_distributions()
    optional = {e.module: e for e in OPTIONAL_DEPENDENCIES}
    wrong = []
    for module, places in sorted(third_party_imports().items()):
        if module in optional:
            continue
        dists = {canonical(d) for d in distributions.get(module, [])}
        if not dists:
            wrong.append(f"{module} ({places[0]}): not installed here, so no distribution is known for it")
        elif not dists & BASE:
            wrong.append(
                f"{module} ({places[0]}) comes from {sorted(dists)}, which is not in [project].dependencies: "
                "add it there, or make it an optional dependency (merino.optional) behind an off-by-default key"
            )
    assert not wrong, "\n".join(wrong)


def schema_has_key(dotted: str) -> bool:
    """Whether a dotted config key (``*`` for any name) is a property path of the config schema."""
    node = SCHEMA
    for part in dotted.split("."):
        node = SCHEMA["$defs"][node["$ref"].split("/")[-1]] if "$ref" in node else node
        props = node.get("properties", {})
        if part in props:
            node = props[part]
        elif part == "*" and isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return False
    return True


def test_optional_dependencies_name_the_extra_that_installs_them_and_a_config_key():
    for entry in OPTIONAL_DEPENDENCIES:
        assert canonical(entry.distribution) in EXTRAS.get(entry.extra, set()), entry
        assert canonical(entry.distribution) not in BASE, entry
        assert schema_has_key(entry.config_key), entry
    for extra in EXTRAS:  # an extra is test/lint tooling or installs an optional dependency
        assert extra in ("test", "lint") or any(e.extra == extra for e in OPTIONAL_DEPENDENCIES), extra


ABSENT = OptionalDependency(
    module="merino_no_such_backend",
    distribution="merino-no-such-backend",
    extra="nosuch",
    config_key="latency.devices.*.backend",
    enabled=lambda config: any(d.get("backend") == "nosuch" for d in config["latency"]["devices"].values()),
)
PRESENT = OptionalDependency("yaml", "pyyaml", "yamlish", "latency.devices.*.backend", lambda config: True)


def test_config_keys_are_read_against_the_schema():
    assert schema_has_key(ABSENT.config_key) and schema_has_key("scales.pretrain.model.head_dim")  # via $defs
    assert not schema_has_key("latency.devices.*.no_such_key") and not schema_has_key("no_such_section")


def test_a_set_key_whose_package_is_missing_stops_in_one_line():
    config = {"latency": {"devices": {"cpu": {"backend": "torch"}}}}
    check_optional_dependencies(config, [ABSENT, PRESENT])  # not reached / installed: nothing to say
    config["latency"]["devices"]["cpu"]["backend"] = "nosuch"
    with pytest.raises(ValueError) as err:
        check_optional_dependencies(config, [ABSENT, PRESENT])
    message = str(err.value)
    assert "\n" not in message
    assert "latency.devices.*.backend" in message and 'pip install -e ".[nosuch]"' in message
    assert "yaml" not in message


def test_the_workflow_checks_optional_dependencies_while_parsing():
    common = (REPO / "workflow" / "rules" / "common.smk").read_text()
    assert re.search(r"^check_optional_dependencies\(config\)", common, re.MULTILINE)  # module level: at parse time


def test_readme_installs_the_base_for_the_main_job_and_ci_runs_it_bare():
    readme = (REPO / "README.md").read_text()
    assert "pip install -e . && snakemake --cores 2" in readme
    ci = (REPO / ".ci" / "run").read_text()
    assert ".ci/bare-run" in ci and ci.index(".ci/bare-run") < ci.index("python -m pytest")
    bare = (REPO / ".ci" / "bare-run").read_text()
    assert re.search(r'pip" install [^\n]*-e \.\s*(#|$|\n)', bare) and "[test]" not in bare
