"""Optional dependencies: packages outside the base install, each reached only through an off-by-default config key.

Every third-party package that a job of the default DAG imports is a base dependency (``pyproject.toml``,
``[project].dependencies``): ``tests/test_dependencies.py`` fails on an import in ``src/`` or ``workflow/`` that maps
to neither a base dependency nor an entry of ``OPTIONAL_DEPENDENCIES``, and CI runs the tiny DAG after exactly
``pip install -e .``.  An entry names its module, the distribution and extra that install it, and the config key
that reaches it; ``check_optional_dependencies`` (run by ``workflow/rules/common.smk`` while Snakemake parses the
workflow) stops a run whose config sets such a key while the package is missing, before any job, with one line
naming the key and the ``pip install`` to run.  No entry today: every backend the workflow offers is in the base
install (ONNX Runtime included: on-device latency is part of the default DAG).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class OptionalDependency:
    """A package outside the base install.

    module (str): the top-level import name.
    distribution (str): the distribution pip installs it from.
    extra (str): the extra of this project that installs it (``pip install -e ".[extra]"``).
    config_key (str): the dotted config key that reaches it, as an error names it.
    enabled (callable): config -> True when this run reaches the package (the key is set).
    """

    module: str
    distribution: str
    extra: str
    config_key: str
    enabled: Callable[[dict], bool]


OPTIONAL_DEPENDENCIES: tuple[OptionalDependency, ...] = ()


def missing_optional_dependencies(
    config: dict, entries: Iterable[OptionalDependency] = OPTIONAL_DEPENDENCIES
) -> list[OptionalDependency]:
    """The entries this config reaches whose module is not installed."""
    return [e for e in entries if e.enabled(config) and importlib.util.find_spec(e.module) is None]


def check_optional_dependencies(config: dict, entries: Iterable[OptionalDependency] = OPTIONAL_DEPENDENCIES) -> None:
    """Raise one ValueError line per run: the config keys that need a package the environment lacks, and the
    ``pip install`` that brings each."""
    missing = missing_optional_dependencies(config, entries)
    if missing:
        raise ValueError(
            "; ".join(
                f"config {e.config_key} needs the package {e.distribution!r} (module {e.module!r}), which is not "
                f'installed: pip install -e ".[{e.extra}]"'
                for e in missing
            )
        )
