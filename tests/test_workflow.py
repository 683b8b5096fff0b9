"""The Snakemake layer: config errors before any job, a smoke run of the design DAG on a tiny
config, partial reruns (an edit reruns exactly the jobs that use the edited value) and the HTML report."""

import base64
import functools
import json
import operator
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from html import unescape as html_unescape
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"
TINY = REPO / "tests" / "configs" / "tiny.yaml"
DEFAULT = REPO / "config" / "config.yaml"


def snakemake(workdir, *args, config=None, configfiles=(DEFAULT, TINY), timeout=600):
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(SNAKEFILE),
        "-d",
        str(workdir),
        "--cores",
        "2",
        *args,
        "--configfile",
        *map(str, configfiles),
    ]  # targets before --configfile
    if config is not None:
        text = yaml.safe_dump(config)
        path = Path(workdir) / f"override-{abs(hash(text)):x}.yaml"  # one per edit: dry runs go side by side
        path.write_text(text)
        cmd.append(str(path))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def side_by_side(function, items):
    """function(item) for every item, two at a time: a dry run is one mostly single-threaded process."""
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(function, items))


def planned_jobs(workdir, config=None, configfiles=(DEFAULT, TINY)):
    """rule -> count of jobs a dry run would execute."""
    out = snakemake(workdir, "-n", "--quiet", "rules", config=config, configfiles=configfiles)
    assert out.returncode == 0, out.stderr + out.stdout
    jobs = {}
    for line in (out.stdout + out.stderr).splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            jobs[m.group(1)] = int(m.group(2))
    return jobs


MALFORMED = [  # through Snakemake: the checks run before any job (tests/test_checks.py has many more cases)
    ({"search": {"popsize": 10}}, "popsize"),
    ({"search": {"budgets": ["flops0.001G"]}}, r"search.budgets\[0\]='flops0.001G' is below the smallest"),
    (
        {"comparisons": {"table4": [{"paper": "TE-NAS", "model": "GPT-width-S60"}]}},
        r"comparisons.table4\[0\].model names 'GPT-width-S60', which must be a search",
    ),
]


@pytest.fixture(scope="module")
def malformed_runs(tmp_path_factory):
    """(workdir, dry run) of every malformed override, each in its own empty working directory."""
    dirs = [tmp_path_factory.mktemp("malformed") for _ in MALFORMED]
    return side_by_side(lambda k: (dirs[k], snakemake(dirs[k], "-n", config=MALFORMED[k][0])), range(len(MALFORMED)))


@pytest.mark.slow
@pytest.mark.parametrize("case", range(len(MALFORMED)), ids=[m for _, m in MALFORMED])
def test_malformed_config_stops_before_any_job(malformed_runs, case):
    workdir, out = malformed_runs[case]
    assert out.returncode != 0
    assert re.search(MALFORMED[case][1], out.stdout + out.stderr), out.stderr[-2000:]
    assert not (workdir / "results").exists()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny DAG, run to the end: CI's run after the bare install when MERINO_SMOKE_RUN names its directory
    (.ci/bare-run: the same command in a venv made by `pip install -e .` alone), otherwise run here.  Either way
    test_smoke_run_produces_every_output ends by checking that a dry run in it plans nothing (it is current)."""
    given = os.environ.get("MERINO_SMOKE_RUN")
    if given:
        workdir = Path(given)
        assert (workdir / "results").is_dir(), f"MERINO_SMOKE_RUN={given!r} holds no run: .ci/bare-run DIR makes one"
        return workdir
    workdir = tmp_path_factory.mktemp("tiny_run")
    out = snakemake(workdir)
    assert out.returncode == 0, out.stderr[-4000:]
    return workdir


def executed_rules(run: Path) -> set[str]:
    """The rules of every job Snakemake ran in ``run`` (its logs under .snakemake/log; dry runs write none)."""
    rules = set()
    for log in (run / ".snakemake" / "log").glob("*.snakemake.log"):
        rules |= set(re.findall(r"^(?:local)?rule (\w+):$", log.read_text(), re.MULTILINE))
    return rules


@pytest.mark.slow
def test_smoke_run_covers_every_rule_of_the_default_dag(tiny_run, tmp_path):
    """The tiny run (CI: after the bare install) ran a job of every rule `snakemake -n --cores 2` plans for the
    default config in a fresh checkout, so a rule added later is covered without anyone adding it to tiny.yaml."""
    default = set(planned_jobs(tmp_path, configfiles=(DEFAULT,)))  # as a fresh checkout plans the default
    assert len(default) > 30, default
    missing = default - executed_rules(tiny_run)
    assert not missing, f"tests/configs/tiny.yaml runs no job of the default DAG's rules {sorted(missing)}"


@pytest.mark.slow
def test_smoke_run_produces_every_output(tiny_run):
    for name in [
        "results/lookup/entropy_lookup.json",
        "results/tables/table8.csv",
        "results/tables/table1_entropy.csv",
        "figures/fig2_lookup_error.pdf",
        "results/tables/fig2_lookup_error.json",
    ]:
        assert (tiny_run / name).stat().st_size > 0, name
    for budget in ("flops60G", "flops110G", "flops160G"):
        record = json.loads((tiny_run / f"results/search/eq15/{budget}.json").read_text())
        assert record["cost"]["flops"] <= record["budget"]["value"]
        assert record["certificate"]["gap_pct"] >= -1e-9
        assert record["provenance"]["settings"]["search"]["iterations"] == 3000
        assert record["provenance"]["inputs_sha256"]["lookup"]
    table8 = (tiny_run / "results/tables/table8.csv").read_text()
    assert "MeRino-64M" in table8 and "paper_flops_G" in table8
    for model in ("MeRino-S60", "MeRino-S110", "MeRino-S160"):
        out = tiny_run / "results/models" / model
        for name in ("model.safetensors", "config.json", "tokenizer.json", "loss.pdf", "log.jsonl"):
            assert (out / name).stat().st_size > 0, (model, name)
        metrics = json.loads((out / "metrics.json").read_text())
        assert 1 < metrics["val_perplexity"] < 512  # below the uniform guess over the vocabulary
        provenance = json.loads((out / "provenance.json").read_text())
        assert provenance["settings"]["training"]["steps"] == 20
        assert provenance["inputs_sha256"]["tokens_meta"] and provenance["settings"]["data"]["corpus_sha256"]
    study = (tiny_run / "results/tables/fig3_summary.csv").read_text()
    for proxy in ("entropy", "entropy_eq15", "ntk", "dss", "decoder_params", "half_vs_full_training"):
        assert f"\n{proxy}," in study, proxy
    assert "\nentropy_calibrated," in study
    fig3 = pd.read_csv(tiny_run / "results/tables/fig3_summary.csv").set_index(["proxy", "split"])
    for rival in ("ntk", "dss", "decoder_params"):
        for prefix in ("", "eq15_"):
            row = fig3.loc[(rival, "all")]
            assert row[f"{prefix}verdict"] in ("holds", "fails", "undecided at this scale"), (rival, prefix)
            assert row[f"{prefix}entropy_minus_spearman_lo"] <= row[f"{prefix}entropy_minus_spearman_hi"]
    assert len((tiny_run / "results/tables/fig3_correlation.csv").read_text().splitlines()) == 1 + 6
    assert (tiny_run / "figures/fig3_correlation.pdf").stat().st_size > 0
    table1 = (tiny_run / "results/tables/table1.csv").read_text()
    assert "perplexity" in table1 and "paper_perplexity" in table1
    for model in ("MeRino-S60", "GPT-width-S60"):
        raw = tiny_run / "results/eval" / model
        summary = json.loads((raw / "summary.json").read_text())
        assert set(summary["tasks"]) == {"merino_word_order", "merino_continuation", "merino_heldout"}
        assert summary["tasks"]["merino_word_order"]["samples"] == 40
        assert json.loads((raw / "results.json").read_text())["configs"]["merino_word_order"]["dataset_path"] == "json"
        assert len((raw / "samples_merino_word_order.jsonl").read_text().splitlines()) == 40
    arch = json.loads((tiny_run / "results/models/GPT-width-S60/config.json").read_text())
    assert arch["block_depths"] == [2] and arch["embed_proj_dim"] == arch["block_embed_dims"][0]
    table2 = pd.read_csv(tiny_run / "results/tables/table2.csv")
    ours = table2[table2.source == "ours"].set_index("model")
    assert list(ours.index) == ["MeRino-S60", "GPT-width-S60"]
    assert ours.loc["MeRino-S60", "avg"] == pytest.approx(
        ours.loc["MeRino-S60", ["merino_word_order", "merino_continuation"]].mean()
    )
    assert table2[table2.source == "paper"].set_index("model").loc["OPT-350M", "avg"] == 0.408
    table3 = pd.read_csv(tiny_run / "results/tables/table3.csv").set_index("model")
    assert table3.loc["MeRino-S60", "heldout_byte_ppl"] > 1
    assert table3.loc["GPT-2-124M", "params_M"] == 124.44 and table3.loc["GPT-2-124M", "flops_G_paper"] == 290
    assert table3.loc["MeRino-52M", "latency_ratio_to_MeRino-52M"] == 1.0
    assert table3.loc["MeRino-S60", "latency_ms"] > 0 and np.isnan(table3.loc["GPT-2-124M", "latency_ms"])
    latency = json.loads((tiny_run / "results/latency/cpu/latency.json").read_text())
    assert latency["protocol"]["threads"] == 1 and latency["protocol"]["seq_len"] == 32
    assert all(len(m["samples_ms"]) == 3 for m in latency["models"].values())
    assert (tiny_run / "figures/fig1_accuracy_latency.pdf").stat().st_size > 0
    check = json.loads((tiny_run / "results/pretrain/latency/cpu/predictor_check.json").read_text())
    assert check["architectures"] == len(check["rows"]) == 3 and all(r["measured_ms"] > 0 for r in check["rows"])
    for budget in ("latency2x-cpu", "latency1000ms-cpu", "memory10MB"):
        record = json.loads((tiny_run / f"results/pretrain/search/eq15/{budget}.json").read_text())
        assert record["budget"]["label"] == budget
    relative = json.loads((tiny_run / "results/pretrain/search/eq15/latency2x-cpu.json").read_text())["budget"]
    assert relative["multiple"] == 2 and relative["value"] == pytest.approx(2 * relative["smallest_architecture"])
    fig6 = pd.read_csv(tiny_run / "results/tables/fig6_quantization.csv").set_index("scheme")
    assert list(fig6.index) == ["fp32", "int8", "int4"] and (fig6["model"] == "MeRino-S60").all()
    assert fig6.loc["int4", "size_MB"] < fig6.loc["int8", "size_MB"] < fig6.loc["fp32", "size_MB"]
    assert abs(fig6.loc["int8", "merino_heldout_byte_ppl"] / fig6.loc["fp32", "merino_heldout_byte_ppl"] - 1) < 0.01
    assert fig6.loc["int8", "kernels"] == "onnxruntime com.microsoft.MatMulNBits 8-bit, int8 compute"
    assert fig6.loc["int4", "weights_MB"] < fig6.loc["int8", "weights_MB"] < fig6.loc["fp32", "weights_MB"]
    assert (fig6["latency_ms"] > 0).all() and fig6.loc["fp32", "latency_vs_fp32"] == 1
    assert planned_jobs(tiny_run) == {}


def average_accuracy(run, model):
    tasks = json.loads((run / "results/eval" / model / "summary.json").read_text())["tasks"]
    return np.mean([tasks[t]["acc"] for t in ("merino_word_order", "merino_continuation")])


@pytest.mark.slow
def test_smoke_run_compares_searches_and_ablations(tiny_run):
    ntk = json.loads((tiny_run / "results/pretrain/search/ntk/flops0.006G.json").read_text())
    assert ntk["objective"] == "ntk" and ntk["cost"]["flops"] <= 0.006e9 and "skipped" in ntk["certificate"]
    assert 0 < ntk["search_cost"]["objective_computations"] <= ntk["search_cost"]["evaluations"]
    assert ntk["provenance"]["settings"]["search"]["proxies"]["ntk_batch_size"] == 4
    fig5 = pd.read_csv(tiny_run / "results/tables/fig5_nas_comparison.csv").set_index("model")
    assert list(fig5["method"]) == ["MeRino (entropy)", "TE-NAS (NTK)", "GPT width-scaled"]
    assert list(fig5["budget"]) == ["flops0.006G", "flops0.006G", "flops0.008G"]
    for model in fig5.index:
        assert fig5.loc[model, "avg_acc"] == pytest.approx(average_accuracy(tiny_run, model))
    assert fig5.loc["GPT-width-S60", "best_at_budget"]  # alone at its budget
    assert (tiny_run / "figures/fig5_nas_comparison.pdf").stat().st_size > 1000
    table4 = pd.read_csv(tiny_run / "results/tables/table4.csv").set_index("method")
    assert list(table4["model"]) == ["MeRino-S60", "NTK-S60"] and table4.loc["MeRino", "time_vs_first"] == 1
    assert table4.loc["TE-NAS", "objective_computations"] == ntk["search_cost"]["objective_computations"]
    assert table4.loc["TE-NAS", "paper_hours"] == 1.2 and table4["energy_source"].str.len().min() > 0
    table5 = pd.read_csv(tiny_run / "results/tables/table5.csv").set_index("sharing")
    assert table5.loc["without", "model"] == "MeRino-S60-unshared" and table5.loc["with", "paper_params_M"] == 52
    assert table5.loc["without", "flops_M"] == table5.loc["with", "flops_M"]
    assert table5.loc["without", "params_M"] >= table5.loc["with", "params_M"]
    unshared = json.loads((tiny_run / "results/models/MeRino-S60-unshared/config.json").read_text())
    assert unshared["weight_sharing"] is False
    table6 = pd.read_csv(tiny_run / "results/tables/table6.csv")
    assert list(table6["model"]) == ["MeRino-S60-plain", "MeRino-S60-gamma", "MeRino-S60"]
    assert table6["avg_acc"].tolist() == pytest.approx([average_accuracy(tiny_run, m) for m in table6["model"]])


TABLES = {"table2": 1, "table3": 1, "fig1": 1}
QUANTIZED = {"quantize": 2, "evaluate_quantized": 2, "quantized_latency": 1, "fig6": 1}  # MeRino-S60 at INT8, INT4
COMPARE = {"fig5": 1, "table4": 1, "table5": 1, "table6": 1}
# a change to the entropy searches: MeRino-S60/110/160 and S60's unshared, plain and gamma twins (4 evaluated);
# MeRino-S60 is also timed and quantized / a change to every trained model (8, of which 6 are evaluated)
MERINO = {
    "pretrain": 6,
    "evaluate": 4,
    "latency": 1,
    "generation": 1,
    "latency_predicted": 1,
    "table3_latency_prediction": 1,
    **QUANTIZED,
    **TABLES,
    **COMPARE,
}
EVAL = {"evaluate": 6, **QUANTIZED, **TABLES, **COMPARE}
PROXY = {"proxy_search_pretrain": 1, "pretrain": 1, "evaluate": 1, "fig5": 1, "table4": 1}  # NTK-S60


RERUNS = [
    (
        {"search": {"population": 32}},  # 9 at scales.pretrain: 3 models, 3 latency, memory, Table 6's 2
        {"search": 3, "search_pretrain": 9, "table8": 1, **MERINO, "all": 1},
    ),  # not the proxy search (own EA)
    (
        {"entropy": {"gamma_strength": 4.0}},  # the proxy search records its result's entropy too
        {
            "search": 3,
            "search_pretrain": 9,
            "design_fit": 1,
            "table8": 1,
            "table1_entropy": 1,
            "correlation_proxies": 6,
            "correlation_study": 1,
            "table1": 1,
            **MERINO,
            **PROXY,
            "pretrain": 7,
            "evaluate": 5,
            "all": 1,
        },
    ),
    (
        {"entropy": {"epsilon": 0.03}},
        {
            "entropy_lookup": 1,
            "entropy_lookup_pretrain": 1,
            "entropy_lookup_correlation": 1,
            "search": 3,
            "search_pretrain": 9,
            "design_fit": 1,
            "table8": 1,
            "table1_entropy": 1,
            "fig2": 1,
            "correlation_proxies": 6,
            "correlation_study": 1,
            "table1": 1,
            **MERINO,
            **PROXY,
            "pretrain": 7,
            "evaluate": 5,
            "all": 1,
        },
    ),
    ({"fig2": {"architectures": 7}}, {"fig2": 1, "all": 1}),
    ({"design_fit": {"grid": {"beta": [1.0]}}}, {"design_fit": 1, "table8": 1, "all": 1}),
    (
        {"search": {"selection": "generational"}},  # every search, the proxy-driven one too (same selection)
        {
            "search": 3,
            "search_pretrain": 9,
            "table8": 1,
            **MERINO,
            "proxy_search_pretrain": 1,
            "pretrain": 7,
            "evaluate": 5,
            "fig5": 1,
            "table4": 1,
            "all": 1,
        },
    ),
    ({"search": {"budgets": ["flops60G", "flops110G", "flops160G", "params2M"]}}, {"search": 1, "all": 1}),
    (
        {"scales": {"paper": {"cost": {"count_lm_head": True}}}},
        {"search": 3, "design_fit": 1, "table8": 1, "table1_entropy": 1, "table1": 1, "table3": 1, "fig1": 1, "all": 1},
    ),
    ({"pretrain": {"training": {"lr": 2.0e-3}}}, {"pretrain": 8, **EVAL, "all": 1}),
    (
        {"scales": {"pretrain": {"cost": {"memory_seq_len": 64}}}},
        {
            "search_pretrain": 9,
            "proxy_search_pretrain": 1,
            "naive_scaling": 1,
            "pretrain": 8,
            "latency": 1,
            "generation": 1,
            "latency_predicted": 1,
            "table3_latency_prediction": 1,
            **EVAL,
            "all": 1,
        },
    ),
    (
        {"data": {"tokenizer": {"vocab_size": 600}}},  # the NTK's batch is training text
        {"prepare_data": 1, "proxy_search_pretrain": 1, "pretrain": 8, **EVAL, "all": 1},
    ),
    (
        {"correlation": {"data": {"tokenizer": {"vocab_size": 600}}}},
        {
            "prepare_correlation_data": 1,
            "correlation_proxies": 6,
            "correlation_train": 8,
            "correlation_study": 1,
            "table1": 1,
            "all": 1,
        },
    ),
    ({"pretrain": {"resources": {"runtime": 5}}}, {}),
    (
        {"correlation": {"architectures": 7}},
        {
            "correlation_architecture": 1,
            "correlation_proxies": 1,
            "correlation_train": 1,
            "correlation_study": 1,
            "all": 1,
        },
    ),
    ({"correlation": {"bootstrap": {"samples": 100}}}, {"correlation_study": 1, "all": 1}),
    ({"correlation": {"proxies": {"ntk_inits": 2}}}, {"correlation_proxies": 6, "correlation_study": 1, "all": 1}),
    ({"correlation": {"proxies": {"fused_qkv": False}}}, {"correlation_proxies": 6, "correlation_study": 1, "all": 1}),
    (
        {"correlation": {"training": {"lr": 1.0e-3}}},
        {"correlation_train": 8, "correlation_study": 1, "table1": 1, "all": 1},
    ),
    (
        {"evaluation": {"local_tasks": {"multiple_choice": {"items": 30}}}},
        {"eval_tasks": 1, **EVAL, "quantize": 0, "quantized_latency": 0, "all": 1},
    ),
    ({"evaluation": {"batch_size": 8}}, {**EVAL, "quantize": 0, "quantized_latency": 0, "all": 1}),
    (
        {"evaluation": {"models": ["MeRino-S60"]}},
        {"latency": 1, "generation": 1, "latency_predicted": 1, "table3_latency_prediction": 1, **TABLES, "all": 1},
    ),
    (
        {"baselines": {"naive_scaling": {"base_depth": 1}}},
        {
            "naive_scaling": 1,
            "pretrain": 1,
            "latency": 1,
            "generation": 1,
            "latency_predicted": 1,
            "table3_latency_prediction": 1,
            "evaluate": 1,
            **TABLES,
            "fig5": 1,
            "all": 1,
        },
    ),
    (
        {"quantization": {"schemes": {"int4": {"bits": 4, "group_size": 16}}}},
        {"quantize": 1, "evaluate_quantized": 1, "quantized_latency": 1, "fig6": 1, "all": 1},
    ),
    ({"quantization": {"kernels": {"threads": 2}}}, {"quantized_latency": 1, "fig6": 1, "all": 1}),
    ({"quantization": {"kernels": {"evaluate": "integer"}}}, {"evaluate_quantized": 2, "fig6": 1, "all": 1}),
    ({"latency": {"generation": {"new_tokens": 4}}}, {"generation": 1, "table3": 1, "fig1": 1, "all": 1}),
    (
        {"latency": {"protocol": {"repeats": 4}}},
        {
            "latency": 1,
            "latency_table": 1,
            "latency_check": 1,
            "search_pretrain": 2,
            "quantized_latency": 1,
            "fig6": 1,
            "table3": 1,
            "fig1": 1,
            "all": 1,
        },
    ),
    ({"evaluation": {"resources": {"runtime": 5}}}, {}),
    ({"comparisons": {"search": {"iterations": 16}}}, {**PROXY, "all": 1}),
    ({"comparisons": {"search": {"proxies": {"ntk_inits": 2}}}}, {**PROXY, "all": 1}),
    ({"comparisons": {"search": {"proxies": {"ntk_weights_only": False}}}}, {**PROXY, "all": 1}),
    (
        {
            "comparisons": {
                "fig5": [
                    {"method": "MeRino (entropy)", "models": ["MeRino-S60"]},
                    {"method": "TE-NAS (NTK)", "models": ["NTK-S60"]},
                ]
            }
        },
        {"fig5": 1, "all": 1},
    ),
    ({"comparisons": {"resources": {"runtime": 5}}}, {}),
]


@pytest.fixture(scope="module")
def planned_after_edit(tiny_run):
    return side_by_side(lambda edit: planned_jobs(tiny_run, config=edit), [edit for edit, _ in RERUNS])


@pytest.mark.slow
@pytest.mark.parametrize(
    "case", range(len(RERUNS)), ids=[yaml.safe_dump(e, default_flow_style=True).strip() for e, _ in RERUNS]
)
def test_an_edit_reruns_exactly_its_dependants(planned_after_edit, case):
    assert planned_after_edit[case] == {rule: n for rule, n in RERUNS[case][1].items() if n}


def fresh_clone(dest: Path) -> Path:
    """A clone of this checkout as it is now: a git clone, with the working tree's tracked and untracked
    (not ignored) files copied over it, so uncommitted edits are tested too."""
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(dest)], check=True, timeout=120)
    listed = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


DOCS = [
    REPO / "README.md",
    REPO / "config" / "README.md",
    REPO / "profiles" / "slurm" / "README.md",
    REPO / "tests" / "README.md",
    *sorted(REPO.glob("docs/*.md")),
]


def readme_snakemake_commands() -> list[str]:
    """Every Snakemake command the README and the other documentation (DOCS) print, exactly as printed: the lines
    of their bash blocks (comments cut) and their inline code spans; not the ones with placeholders (``...``,
    ``<...>``)."""
    text = "\n".join(doc.read_text() for doc in DOCS)
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            commands += [part.strip() for part in line.split("&&")]
    commands += [
        " ".join(span.split())
        for span in re.findall(r"(?<!`)`([^`]+)`(?!`)", re.sub(r"```.*?```", "", text, flags=re.S))
    ]
    chosen = [c for c in commands if c.startswith("snakemake ") and "..." not in c and "<" not in c]
    return list(dict.fromkeys(chosen))


README_COMMANDS = readme_snakemake_commands()
PAPER_DAG = {
    "pretrain": 23,  # 3 searched and 20 compared models (Fig. 5, Tables 5-6)
    "correlation_train": 83,  # 81 sampled + Table 1's wide and deep
    "evaluate": 29,
    "table2": 1,
    "proxy_search": 9,
    "fig5": 1,
    "table4": 1,
    "table5": 1,
    "table6": 1,
    "quantize": 18,
    "quantized_latency": 9,
    "latency": 1,
    "generation": 1,
    "all": 1,
}


@pytest.fixture(scope="module")
def readme_dry_runs(tmp_path_factory):
    """Each README Snakemake command run as a user types it, from a fresh clone's root, as a dry run (-n)."""
    clone = fresh_clone(tmp_path_factory.mktemp("clone") / "merino-workflow")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    def dry_run(command):
        return subprocess.run(
            f"{command} -n", shell=True, cwd=clone, env=env, capture_output=True, text=True, timeout=300
        )

    runnable = [c for c in README_COMMANDS if "--report" not in c]  # a report needs results: test_report_*
    return clone, dict(zip(runnable, side_by_side(dry_run, runnable)))


def test_readme_lists_the_commands_a_user_types():
    assert "snakemake --cores 2" in README_COMMANDS  # the main job
    assert "snakemake --configfile config/paper.yaml -n" in README_COMMANDS  # Running on Slurm, step 3
    assert "snakemake --profile profiles/slurm --configfile config/paper.yaml -n" in README_COMMANDS
    assert "snakemake --profile profiles/slurm --configfile config/paper.yaml" in README_COMMANDS


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in README_COMMANDS if "--report" not in c])
def test_readme_command_works_from_a_fresh_clone(readme_dry_runs, command):
    clone, runs = readme_dry_runs
    out = runs[command]
    assert out.returncode == 0, (command, (out.stdout + out.stderr)[-3000:])
    if "--lint" in command:  # lints the workflow, plans nothing
        assert "your workflow is in a good condition" in out.stdout, out.stdout[-3000:]
        return
    planned = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", out.stdout, re.M)}
    assert planned.get("total", 0) > 0, out.stdout[-2000:]
    if re.search(r"--configfile config/paper\.yaml( -n)?$", command) and not re.search(r"results/|figures/", command):
        # the whole paper DAG (alone: not scaled down by a further --configfile, no targets)
        assert {rule: planned.get(rule) for rule in PAPER_DAG} == PAPER_DAG, out.stdout[-3000:]
        assert "gpu=8" in out.stdout and "pretrained" not in out.stderr
    if command == "snakemake --cores 2":  # the embedded default: every stage
        assert {
            "pretrain",
            "correlation_train",
            "evaluate",
            "quantize",
            "latency",
            "proxy_search_pretrain",
            "fig5",
            "all",
        } <= set(planned), planned
    assert not (clone / "results").exists()


@pytest.mark.slow
def test_a_partial_base_config_is_named(tmp_path):
    """The first --configfile is the whole base configuration; a partial one gets an error that says how to
    layer it, and nothing runs."""
    (tmp_path / "mine.yaml").write_text("search: {iterations: 10}\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(SNAKEFILE),
            "-d",
            str(tmp_path),
            "--configfile",
            str(tmp_path / "mine.yaml"),
            "-n",
            "--cores",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    log = out.stdout + out.stderr
    assert "mine.yaml' is the base configuration" in log and "--configfile config/config.yaml" in log, log[-2000:]
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_latency_stage_completes_on_a_much_slower_device(tmp_path):
    """The latency table as a device 40x slower than this machine would measure it (this machine's table,
    scaled): the relative budget resolves to 40x the milliseconds and finds the same architecture, and the
    latency stage completes.  (An absolute budget chosen on a fast machine failed the DAG on a busy one.)"""
    budgets = [b for b in yaml.safe_load(TINY.read_text())["latency"]["budgets"] if re.match(r"latency.*-cpu$", b)]
    searches = [f"results/pretrain/search/eq15/{b}.json" for b in budgets]
    targets = [*searches, "results/pretrain/latency/cpu/predictor_check.json"]
    out = snakemake(tmp_path, *targets)
    assert out.returncode == 0, out.stderr[-3000:]
    here = {s: json.loads((tmp_path / s).read_text()) for s in searches}
    table = tmp_path / "results/pretrain/latency/cpu/lookup.json"
    data = json.loads(table.read_text())
    data["constant_ms"] *= 40
    for key in ("layers", "projections"):
        data[key] = [[a, b, 40 * ms] for a, b, ms in data[key]]
    table.write_text(json.dumps(data))
    out = snakemake(tmp_path, *targets)  # the table is newer than the searches: they rerun on it
    assert out.returncode == 0, out.stderr[-3000:]
    relative = "results/pretrain/search/eq15/latency2x-cpu.json"
    slow = json.loads((tmp_path / relative).read_text())
    assert slow["architecture"] == here[relative]["architecture"]
    assert slow["budget"]["value"] == pytest.approx(40 * here[relative]["budget"]["value"])
    assert slow["latency"]["cpu"]["predicted_ms"] <= slow["budget"]["value"]


# every table and figure the report must carry: path -> its category in workflow/rules (report(...))
REPORTED = {
    "results/tables/table8.csv": "Design",
    "results/tables/table1_entropy.csv": "Design",
    "figures/fig2_lookup_error.pdf": "Design",
    "results/tables/fig2_lookup_error.csv": "Design",
    "results/tables/fig2_lookup_error.json": "Design",
    "figures/fig3_correlation.pdf": "Correlation study",
    "results/tables/fig3_correlation.csv": "Correlation study",
    "results/tables/fig3_summary.csv": "Correlation study",
    "results/tables/table1.csv": "Correlation study",
    **{f"results/models/{m}/loss.pdf": "Pretraining" for m in ("MeRino-S60", "MeRino-S110", "MeRino-S160")},
    "results/tables/table2.csv": "Evaluation",
    "results/tables/table3.csv": "Evaluation",
    "figures/fig1_accuracy_latency.pdf": "Evaluation",
    "results/tables/fig6_quantization.csv": "Quantization",
    "figures/fig6_quantization.pdf": "Quantization",
    "figures/fig5_nas_comparison.pdf": "Comparisons",
    "results/tables/fig5_nas_comparison.csv": "Comparisons",
    "results/tables/table4.csv": "Comparisons",
    "results/tables/table5.csv": "Comparisons",
    "results/tables/table6.csv": "Comparisons",
}
# in a headless browser, the report's own JavaScript app shows the category named in the URL's
# fragment; what it renders is copied into <pre id="merino-seen"> for --dump-dom
BROWSER_PROBE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  app.showCategory(decodeURIComponent(location.hash.slice(1)));
  setTimeout(() => {
    const seen = document.createElement("pre");
    seen.id = "merino-seen";
    seen.textContent = document.querySelector("#app").innerText;
    document.body.appendChild(seen);
  }, 500);
}, 500));
</script>"""


def report_variable(html: str, name: str) -> dict:
    """A JSON variable of the report's app: `results` (path -> name, caption, data_uri, ...) or
    `categories` (category -> subcategory -> paths)."""
    match = re.search(rf"var {name} = (\{{.*?\}});\n", html, re.S)
    assert match, f"no `var {name}` in the report"
    return json.loads(match.group(1))


@pytest.mark.slow
def test_report_gathers_every_table_and_figure(tiny_run):
    out = snakemake(tiny_run, "--report", "results/report.html")
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    html = (tiny_run / "results/report.html").read_text()
    results, categories = report_variable(html, "results"), report_variable(html, "categories")
    for path, category in REPORTED.items():
        assert path in results, (path, sorted(results))
        record = results[path]
        _mime, data = record["data_uri"].split(",", 1)
        assert base64.b64decode(data) == (tiny_run / path).read_bytes(), path  # the file itself is inside
        assert record["caption"].strip(), path
        assert path in functools.reduce(operator.iadd, categories[category].values(), []), (path, category, categories)

    browser = next(filter(None, map(shutil.which, ("chromium-headless-shell", "chromium", "google-chrome"))), None)
    if browser is None and os.environ.get("MERINO_REQUIRE_BROWSER") == "1":
        pytest.fail("MERINO_REQUIRE_BROWSER=1, but no headless browser on PATH (apt: chromium-headless-shell)")
    if browser is None:
        pytest.skip("no headless browser (apt: chromium-headless-shell): the report's HTML was checked, not rendered")
    probe = tiny_run / "results/report-probe.html"
    head, body_end, tail = html.rpartition("</body>")  # the last one: the bundled JS quotes "</body>" too
    probe.write_text(head + BROWSER_PROBE + body_end + tail)
    for category in sorted(set(REPORTED.values())):
        dom = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--virtual-time-budget=10000",
                "--dump-dom",
                f"{probe.as_uri()}#{quote(category)}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert dom.returncode == 0, dom.stderr[-2000:]
        seen = re.search(r'<pre id="merino-seen">(.*?)</pre>', dom.stdout, re.S)
        assert seen, (category, dom.stdout[-2000:], dom.stderr[-2000:])
        shown = [line.strip() for line in html_unescape(seen.group(1)).splitlines()]
        assert category in shown, (category, shown)
        for path, its_category in REPORTED.items():
            assert (path in shown) == (its_category == category), (category, path, shown)
