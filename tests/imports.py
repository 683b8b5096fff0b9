"""The third-party modules that src/ and workflow/ import, everywhere (module level and inside functions).

    python tests/imports.py        # in an environment made by `pip install -e .` alone (CI's bare install)

prints one line per module that environment cannot import (with the file and line that imports it) and exits 1,
or says how many modules it found installed.  Optional modules (merino.optional.OPTIONAL_DEPENDENCIES) are left out:
no default job reaches them.  Standard library only, so it runs before anything else is installed;
tests/test_dependencies.py uses the same scan to map every module to a base dependency.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("src", "workflow")
LOCAL = {"merino"}  # this project's own package
# Snakefile / .smk: Snakemake's language is not Python, so its import lines are read as lines
SMK_IMPORT = re.compile(
    r"^\s*(?:from\s+([A-Za-z_]\w*)[\w.]*\s+import\b|import\s+([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*))"
)


def python_imports(text: str) -> list[tuple[str, int]]:
    """(top-level module, line) of every absolute import in Python source, at any depth."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], node.lineno))
    return found


def snakemake_imports(text: str) -> list[tuple[str, int]]:
    """(top-level module, line) of every import line of a Snakefile or .smk file."""
    found = []
    for lineno, line in enumerate(text.splitlines(), 1):
        m = SMK_IMPORT.match(line)
        if m:
            names = [m.group(1)] if m.group(1) else [n.strip().split(".")[0] for n in m.group(2).split(",")]
            found += [(name, lineno) for name in names]
    return found


def source_files(repo: Path = REPO) -> list[Path]:
    files = []
    for top in SOURCES:
        for path in sorted((repo / top).rglob("*")):
            if path.suffix in (".py", ".smk") or path.name == "Snakefile":
                files.append(path)
    return files


def third_party_imports(repo: Path = REPO) -> dict[str, list[str]]:
    """module -> the places ("path:line") that import it, for every module neither standard library nor ours."""
    where: dict[str, list[str]] = {}
    for path in source_files(repo):
        text = path.read_text()
        found = python_imports(text) if path.suffix == ".py" else snakemake_imports(text)
        for module, lineno in found:
            if module not in sys.stdlib_module_names and module not in LOCAL and module != "__future__":
                where.setdefault(module, []).append(f"{path.relative_to(repo)}:{lineno}")
    return where


def optional_modules(repo: Path = REPO) -> set[str]:
    sys.path.insert(0, str(repo / "src"))
    from merino.optional import OPTIONAL_DEPENDENCIES

    return {e.module for e in OPTIONAL_DEPENDENCIES}


def main() -> int:
    modules = third_party_imports()
    optional = optional_modules()
    missing = [m for m in sorted(modules) if m not in optional and importlib.util.find_spec(m) is None]
    for module in missing:
        print(
            f"bare install: module {module!r} (imported by {', '.join(modules[module][:3])}) is not installed by "
            "`pip install -e .`: add its distribution to [project].dependencies in pyproject.toml"
        )
    if not missing:
        print(
            f"bare install: all {len(modules) - len(optional & set(modules))} third-party modules of src/ and "
            "workflow/ are installed"
        )
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
