"""Paper Table 3 latency on this machine: the paper's baselines and MeRino-52M/61M/64M, random weights,
batch 1, 128 tokens, all measured in one process, interleaved round by round (merino.latency.measure_models);
latency and ratio to MeRino-64M beside the paper's NVIDIA Jetson Nano figures (e.g. OPT-350M / MeRino-64M =
559 / 114 = 4.9x).  Baselines are built from transformers config classes with their published
hyper-parameters (no download); MeRino from the paper's Table 8 structures under config `model`.

    PYTHONPATH=src python benchmarks/latency_ratios.py [--repeats 16] [--threads 2] [--dtype float32]
        [--models GPT-2-124M,MeRino-64M] [--json out.json]
"""

import argparse
import functools
import json
from pathlib import Path

import yaml

from merino.baselines import PAPER_BASELINES, baseline_model
from merino.latency import measure_models, merino_model
from merino.paper import load_reference, paper_structures

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_MODEL = "MeRino-64M"


def baselines() -> dict:
    """name -> factory of the paper's baselines (merino.baselines: published hyper-parameters, random weights)."""
    return {name: functools.partial(baseline_model, name, "cpu") for name in PAPER_BASELINES}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=ROOT / "config/config.yaml", help="its `model` section is MeRino's convention")
    ap.add_argument("--repeats", type=int, default=16, help="timed rounds (paper: 16); fewer for a quick look")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--models", default=None, help="comma-separated subset (MeRino-64M is always measured)")
    ap.add_argument("--json", default=None, help="also write the full result here")
    args = ap.parse_args()

    cfg = yaml.safe_load(Path(args.config).read_text())
    ref = load_reference()
    paper = {name: row[1] for name, row in ref["table3_language_modeling"]["models"].items()}  # jetson_latency_ms
    models = baselines()
    for name, arch in paper_structures(ref).items():
        models[name] = lambda arch=arch: merino_model(arch, cfg["scales"]["paper"]["model"])
    if args.models:
        keep = set(args.models.split(",")) | {REFERENCE_MODEL}
        unknown = keep - set(models)
        if unknown:
            ap.error(f"unknown models {sorted(unknown)}; known: {sorted(models)}")
        models = {k: v for k, v in models.items() if k in keep}

    run = measure_models(
        models,
        reference=REFERENCE_MODEL,
        seq_len=args.seq_len,
        warmup=args.warmup,
        repeats=args.repeats,
        threads=args.threads,
        dtype=args.dtype,
    )
    p = run["protocol"]
    print(
        f"{p['device_name']}, {p['threads']} threads, {p['dtype']}, torch {p['torch_version']}: batch "
        f"{p['batch_size']}, {p['seq_len']} tokens, {p['repeats']} interleaved rounds after {p['warmup']} warm-up"
    )
    print(
        f"{'model':<12} {'params M':>8} {'mean ms':>9} {'median ms':>9} {'std ms':>7}  {'x64M mean':>9} "
        f"{'x64M paired':>11}  {'paper Jetson ms':>15} {'paper x64M':>10}"
    )
    for name, m in run["models"].items():
        r = run["ratios"][name]
        jetson = paper.get(name)
        paper_ratio = f"{jetson / paper[REFERENCE_MODEL]:.2f}" if jetson else "-"
        print(
            f"{name:<12} {m['params'] / 1e6:8.1f} {m['mean_ms']:9.1f} {m['median_ms']:9.1f} {m['std_ms']:7.1f}  "
            f"{r['mean']:9.2f} {r['paired_median']:11.2f}  {jetson if jetson else '-':>15} {paper_ratio:>10}"
        )
    if args.json:
        run["paper_jetson_ms"] = {k: paper[k] for k in run["models"] if k in paper}
        Path(args.json).write_text(json.dumps(run, indent=1) + "\n")


if __name__ == "__main__":
    main()
