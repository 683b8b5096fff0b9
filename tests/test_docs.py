"""The documentation: the README stays short, every relative link in the Markdown files resolves, and the
rule-graph picture (docs/rulegraph.dot, .svg) is the DAG of the rules as they are now, and the package
docstring (src/merino/__init__.py) maps every module."""

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MARKDOWN = sorted(
    [
        REPO / "README.md",
        *REPO.glob("docs/*.md"),
        *REPO.glob("config/*.md"),
        *REPO.glob("profiles/*/*.md"),
        *REPO.glob("tests/*.md"),
    ]
)


def load_rulegraph():
    spec = importlib.util.spec_from_file_location("rulegraph", REPO / "docs" / "rulegraph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors for a Markdown file's headings: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return {
        re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#+\s+(.*)$", text, re.MULTILINE)
    }


def test_readme_fits_in_250_lines():
    lines = (REPO / "README.md").read_text().count("\n")
    assert lines <= 250, f"README.md has {lines} lines; move detail into docs/ (issue 19)"


@pytest.mark.parametrize("doc", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(doc):
    text = doc.read_text()
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", prose):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            broken.append(f"{target}: no file {file}")
        elif anchor and file.suffix == ".md" and anchor not in heading_anchors(file.read_text()):
            broken.append(f"{target}: no heading with anchor #{anchor} in {file.relative_to(REPO)}")
    assert not broken, f"{doc.relative_to(REPO)}: " + "; ".join(broken)


def test_markdown_files_are_found():
    names = {str(p.relative_to(REPO)) for p in MARKDOWN}
    assert {
        "README.md",
        "docs/method.md",
        "docs/outputs.md",
        "docs/benchmarks.md",
        "config/README.md",
        "profiles/slurm/README.md",
        "tests/README.md",
    } <= names


def test_rulegraph_picture_is_current():
    """The committed DOT equals the one drawn from `snakemake --rulegraph` of the default config now."""
    rulegraph = load_rulegraph()
    fresh = rulegraph.canonical_dot(rulegraph.snakemake_rulegraph())
    committed = rulegraph.DOT.read_text()
    assert fresh == committed, (
        f"docs/rulegraph.dot is stale (the rules changed): run `{rulegraph.COMMAND}` "
        "and commit docs/rulegraph.dot and docs/rulegraph.svg"
    )


def test_rulegraph_svg_is_drawn_from_the_committed_dot():
    rulegraph = load_rulegraph()
    svg = rulegraph.SVG.read_text()
    assert f"sha256 {rulegraph.sha256(rulegraph.DOT.read_text())}" in svg, (
        f"docs/rulegraph.svg was not drawn from docs/rulegraph.dot: run `{rulegraph.COMMAND}`"
    )


def test_package_docstring_maps_every_module():
    import merino

    modules = {p.stem for p in (REPO / "src" / "merino").glob("*.py")} - {"__init__"}
    listed = set(re.findall(r"^    ``(\w+)``", merino.__doc__, re.MULTILINE))
    assert listed == modules, (
        f"merino/__init__.py: missing {sorted(modules - listed)}, stale {sorted(listed - modules)}"
    )
