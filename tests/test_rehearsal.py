"""Offline dress rehearsal of the paper-scale run: config/paper.yaml's whole DAG, layered with
tests/configs/rehearsal.yaml (scale only), against a Hugging Face cache staged by tests/hub_staging.py
(synthetic data under the real ids and schemas, randomly initialised baselines with their real configurations),
with HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1: the Hub-reading code of every stage runs as on a cluster's compute
nodes.  A resource missing from the cache stops the run before any job, naming it and its staging command."""

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import hub_staging
import pandas as pd
import pytest
import yaml

from merino import hub
from merino.baselines import PAPER_BASELINES

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"
CONFIGS = [REPO / "config" / "paper.yaml", REPO / "tests" / "configs" / "rehearsal.yaml"]
TASKS = [
    "hellaswag",
    "winogrande",
    "arc_easy",
    "arc_challenge",
    "openbookqa",
    "boolq",
    "wic",
    "cb",
    "wsc",
    "rte",
    "pubmedqa",
    "logiqa",
    "wikitext",
    "ptb",
]


def layered(*paths) -> dict:
    config: dict = {}
    for path in paths:
        hub._merge(config, yaml.safe_load(Path(path).read_text()))
    return config


def snakemake(workdir, *args, env=None, configs=CONFIGS, timeout=1200):
    """Snakemake on this checkout (its scripts import this checkout's merino: PYTHONPATH) in ``workdir``."""
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
        "--configfile",
        *map(str, configs),
        *args,
    ]
    full_env = {**os.environ, "PYTHONPATH": str(REPO / "src"), **(env or {})}
    for key in {"HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME"} - set(env or {}):
        full_env.pop(key, None)  # a run without env= is online (nothing checked, nothing read from the Hub)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=REPO)


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """HF_HOME with every Hub resource of the rehearsal config, staged as the Slurm guide's commands leave them."""
    home = tmp_path_factory.mktemp("hf_home")
    resources = hub.required_resources(layered(*CONFIGS))
    hub_staging.stage(home, resources)
    return home, resources


@pytest.fixture(scope="module")
def rehearsal(staged, tmp_path_factory):
    home, _ = staged
    workdir = tmp_path_factory.mktemp("rehearsal")
    out = snakemake(workdir, env=hub_staging.env(home))
    assert out.returncode == 0, out.stderr[-6000:]
    return workdir, out


def executed_rules(log: str) -> dict[str, int]:
    """rule -> jobs Snakemake ran, from its log."""
    jobs: dict[str, int] = {}
    for rule in re.findall(r"^(?:local)?rule (\w+):$", log, re.M):
        jobs[rule] = jobs.get(rule, 0) + 1
    return jobs


def test_every_stage_of_the_paper_dag_runs_offline(rehearsal, tmp_path):
    workdir, out = rehearsal
    ran = executed_rules(out.stderr)
    # the rules of config/paper.yaml's own DAG (dry run, nothing staged needed online)
    dry = snakemake(tmp_path, "-n", "--quiet", "rules", configs=CONFIGS[:1])
    assert dry.returncode == 0, dry.stderr[-3000:]
    paper_rules = {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+$", dry.stdout + dry.stderr, re.M)} - {"total"}
    assert paper_rules - set(ran) == set(), f"paper rules that did not run: {paper_rules - set(ran)}"
    for path in [
        "results/tables/table1.csv",
        "results/tables/table2.csv",
        "results/tables/table3.csv",
        "results/tables/table4.csv",
        "results/tables/table5.csv",
        "results/tables/table6.csv",
        "results/tables/table8.csv",
        "results/tables/fig3_summary.csv",
        "results/tables/fig6_quantization.csv",
        "figures/fig1_accuracy_latency.pdf",
        "figures/fig2_lookup_error.pdf",
        "figures/fig3_correlation.pdf",
        "figures/fig5_nas_comparison.pdf",
        "figures/fig6_quantization.pdf",
    ]:
        assert (workdir / path).is_file(), path


def test_corpora_and_tokenizer_come_from_the_staged_hub_ids(rehearsal):
    workdir, _ = rehearsal
    pile = json.loads((workdir / "results/data/tokens/meta.json").read_text())
    assert pile["corpus"]["spec"]["name"] == "EleutherAI/the_pile_deduplicated" and pile["corpus"]["spec"]["streaming"]
    assert all(pile["splits"][s]["tokens"] > 0 for s in ("train", "validation", "test"))
    lm1b = json.loads((workdir / "results/correlation/data/tokens/meta.json").read_text())
    assert lm1b["corpus"]["spec"]["name"] == "billion-word-benchmark/lm1b"
    assert lm1b["splits"]["test"]["documents"] == 60  # LM1B's own test split, not carved
    for meta in (pile, lm1b):
        assert meta["tokenizer"]["name"] == "gpt2"


def test_every_task_and_baseline_family_is_evaluated_and_timed_and_quantized(rehearsal):
    workdir, _ = rehearsal
    families = set()
    for name in ["MeRino-60G", "Pythia-70M", "Cerebras-111M", "OPT-125M"]:
        summary = json.loads((workdir / f"results/eval/{name}/summary.json").read_text())
        assert set(summary["tasks"]) == set(TASKS), name
        for scheme in ("int8", "int4") if name != "OPT-125M" else ():  # OPT: tests/test_quantize.py
            quantized = json.loads((workdir / f"results/eval_quantized/{name}/{scheme}/summary.json").read_text())
            assert set(quantized["tasks"]) == set(TASKS), (name, scheme)
        if name in PAPER_BASELINES:
            assert summary["pretrained"] == PAPER_BASELINES[name].hub_id
            families.add(PAPER_BASELINES[name].model_type)
    assert families == {"gpt_neox", "gpt2", "opt"}
    timed = json.loads((workdir / "results/latency/gpu/latency.json").read_text())["models"]
    assert {"Pythia-70M", "Cerebras-111M", "OPT-125M", "MeRino-64M", "MeRino-60G"} <= set(timed)
    table2 = pd.read_csv(workdir / "results/tables/table2.csv")
    assert {"Pythia-70M", "Cerebras-111M", "OPT-125M", "MeRino-60G"} <= set(table2.iloc[:, 0])


def test_report_builds(rehearsal, staged):
    workdir, _ = rehearsal
    out = snakemake(workdir, "--report", "results/report.html", env=hub_staging.env(staged[0]))
    assert out.returncode == 0, out.stderr[-3000:]
    assert (workdir / "results/report.html").stat().st_size > 100_000


# ---- a resource missing from the staged cache stops the run before any job -----------------------------------

MISSING = {
    "dataset": "EleutherAI/the_pile_deduplicated",
    "tokenizer": "gpt2",
    "model": "facebook/opt-125m",
    "task": "aps/super_glue",
}


@pytest.fixture(scope="module")
def missing_runs(staged, tmp_path_factory):
    """For each kind, a copy of the staged cache (hard links) without one resource of that kind, and a run on it."""
    home, resources = staged

    def run(kind):
        resource = next(r for r in resources if r.kind == kind and r.repo_id == MISSING[kind])
        copy = tmp_path_factory.mktemp(f"hf_home_without_{kind}")
        shutil.copytree(home, copy, dirs_exist_ok=True, copy_function=os.link)
        hub_staging.remove(copy, resource)
        workdir = tmp_path_factory.mktemp(f"missing_{kind}")
        return resource, workdir, snakemake(workdir, env=hub_staging.env(copy), timeout=300)

    with ThreadPoolExecutor(2) as pool:  # each run is one mostly single-threaded Snakemake process
        return dict(zip(MISSING, pool.map(run, MISSING)))


@pytest.mark.parametrize("kind", list(MISSING))
def test_missing_resource_stops_before_any_job(missing_runs, kind):
    resource, workdir, out = missing_runs[kind]
    assert out.returncode != 0
    log = out.stdout + out.stderr
    assert "HubCacheError" in log and f"{resource.label}, for " in log, log[-3000:]
    assert resource.staging_command() in log  # the remedy: the command that stages it
    named = re.findall(r"^  (?:dataset|tokenizer|model|task) \S+", log.split("lacks", 1)[1], re.M)
    assert len(named) == 1, named  # only the missing one
    assert not (workdir / "results").exists() and not (workdir / "logs").exists()
