"""Draw the rule graph of the embedded default DAG: docs/rulegraph.dot and docs/rulegraph.svg.

    python docs/rulegraph.py

from the repository root, after any change to the rules or to config/config.yaml that adds, removes or rewires a
rule (tests/test_docs.py fails until then).  `snakemake --rulegraph` prints its edges in an order that changes
from run to run, so the DOT written here is canonical: nodes and edges sorted,
one fill colour per stage file (workflow/rules/<stage>.smk; legend in the picture), and the rules whose outputs
`all` asks for drawn bold instead of as 19 edges into `all`.  Rendering needs Graphviz's `dot`; the SVG records the
SHA-256 of the DOT it was drawn from.
"""

import hashlib
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOT = REPO / "docs" / "rulegraph.dot"
SVG = REPO / "docs" / "rulegraph.svg"
COMMAND = "python docs/rulegraph.py"
STAGE_COLOURS = {
    "design": "#dbe9f6",
    "pretrain": "#fde3c8",
    "correlation": "#e3f1d9",
    "eval": "#f3dcec",
    "latency": "#fff2b3",
    "quantize": "#e5e0f5",
    "compare": "#d9f0ee",
}
DEFAULT_COLOUR = "#eeeeee"  # a stage file added later, until it gets its own colour


def snakemake_rulegraph() -> str:
    """`snakemake --rulegraph` of the default configuration, run from the repository root (nothing runs)."""
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "--rulegraph", "--nolock", "--quiet", "all"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"snakemake --rulegraph failed:\n{(out.stdout + out.stderr)[-3000:]}")
    return out.stdout


def rule_stages() -> dict[str, str]:
    """rule name -> the stage file that defines it (`rule X:` or `use rule Y as X`)."""
    stages = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for name in re.findall(r"^(?:rule\s+(\w+)\s*:|use rule \w+ as (\w+))", smk.read_text(), re.MULTILINE):
            stages[name[0] or name[1]] = smk.stem
    return stages


def canonical_dot(rulegraph: str) -> str:
    """The rule graph as sorted, stage-clustered DOT text (the same for every run of the same DAG)."""
    labels = dict(re.findall(r"^\s*(\d+)\[label = \"(\w+)\"", rulegraph, re.MULTILINE))
    edges = {(labels[a], labels[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", rulegraph, re.MULTILINE)}
    if not labels or not edges:
        raise RuntimeError(f"no rule graph in snakemake's output:\n{rulegraph[-2000:]}")
    targets = {a for a, b in edges if b == "all"}
    stages = rule_stages()
    unplaced = sorted(set(labels.values()) - set(stages) - {"all"})
    if unplaced:
        raise RuntimeError(f"rules {unplaced} are in the DAG but in no workflow/rules/*.smk")
    lines = [
        "digraph rulegraph {",
        "    graph [rankdir=LR, fontname=sans, nodesep=0.15, ranksep=0.5];",
        '    node [shape=box, style="rounded,filled", fontname=sans, fontsize=10];',
        "    edge [color=grey40];",
    ]
    used = sorted({stages[r] for r in labels.values() if r != "all"})
    rows = "".join(
        f'<tr><td bgcolor="{STAGE_COLOURS.get(s, DEFAULT_COLOUR)}">workflow/rules/{s}.smk</td></tr>' for s in used
    )
    lines.append(
        f'    legend [shape=plaintext, style="", label=<<table border="0" cellborder="1" cellspacing="0">'
        f"{rows}<tr><td><b>bold</b>: rule all asks for its output</td></tr></table>>];"
    )
    for rule in sorted(r for r in labels.values() if r != "all"):
        bold = ", penwidth=2.5" if rule in targets else ""
        lines.append(f'    {rule} [fillcolor="{STAGE_COLOURS.get(stages[rule], DEFAULT_COLOUR)}"{bold}];')
    lines += [f"    {a} -> {b};" for a, b in sorted(edges) if b != "all"]
    lines.append("}")
    return "\n".join(lines) + "\n"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def render_svg(dot_text: str) -> str:
    """The SVG Graphviz draws from dot_text, with the DOT's SHA-256 in a comment after the XML declaration."""
    try:
        out = subprocess.run(["dot", "-Tsvg"], input=dot_text, capture_output=True, text=True, check=True, timeout=60)
    except FileNotFoundError as err:
        raise SystemExit(
            "Graphviz's `dot` is not installed (apt-get install graphviz; conda install graphviz)"
        ) from err
    declaration, _, rest = out.stdout.partition("\n")
    return f"{declaration}\n<!-- drawn from docs/rulegraph.dot, sha256 {sha256(dot_text)} -->\n{rest}"


def main():
    dot_text = canonical_dot(snakemake_rulegraph())
    DOT.write_text(dot_text)
    SVG.write_text(render_svg(dot_text))
    print(f"wrote {DOT.relative_to(REPO)} and {SVG.relative_to(REPO)}")


if __name__ == "__main__":
    main()
