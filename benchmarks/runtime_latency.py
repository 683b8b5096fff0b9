"""Paper-protocol latency (batch 1, 128 tokens, one forward pass) through torch eager and through ONNX Runtime
(merino.runtime: the edge runtime a latency device may name), same models, same run.

The models (random weights, the paper's convention) are MeRino-52M (Table 8) and the paper's baselines named
by --models.  Each backend measures all models interleaved (merino.latency.measure_models); the backends
alternate --passes times so a busy spell hits both; the figure is the median over passes of each model's
ONNX Runtime / torch mean latency (below 1: ONNX Runtime is faster).  The export happens before any timing.

    PYTHONPATH=src python benchmarks/runtime_latency.py [--models GPT-2-124M,Pythia-70M] [--threads 1]
        [--repeats 8] [--passes 2]
"""

import argparse
import functools
import statistics

from merino.baselines import baseline_model
from merino.cost import CostModel
from merino.latency import measure_models, merino_model
from merino.paper import load_reference, paper_structures

STRUCTURE = "MeRino-52M"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="GPT-2-124M,Pythia-70M", help="paper baselines beside MeRino-52M")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--passes", type=int, default=2, help="alternations of the two backends")
    ap.add_argument("--seq-len", type=int, default=128)
    args = ap.parse_args()

    cost = CostModel()  # the paper's convention
    convention = {
        "vocab_size": cost.vocab_size,
        "embed_proj_dim": cost.embed_proj_dim,
        "max_positions": cost.max_positions,
        "head_dim": cost.head_dim,
        "weight_sharing": cost.shared,
    }
    models = {STRUCTURE: functools.partial(merino_model, paper_structures(load_reference())[STRUCTURE], convention)}
    models |= {name: functools.partial(baseline_model, name, "cpu") for name in args.models.split(",") if name}
    means = {backend: {name: [] for name in models} for backend in ("torch", "onnxruntime")}
    for _ in range(args.passes):
        for backend in means:
            run = measure_models(
                models,
                "cpu",
                batch_size=1,
                seq_len=args.seq_len,
                warmup=2,
                repeats=args.repeats,
                threads=args.threads,
                backend=backend,
            )
            for name, r in run["models"].items():
                means[backend][name].append(r["mean_ms"])
            versions = {k: v for k, v in run["protocol"].items() if k.endswith("_version")}
    print(
        f"batch 1, {args.seq_len} tokens, {args.threads} thread(s), {args.repeats} timed calls x {args.passes} "
        f"passes per backend; {versions}"
    )
    print(f"{'model':<14} {'torch ms':>9} {'ORT ms':>9} {'ORT / torch':>12}")
    for name in models:
        t, o = (statistics.median(means[b][name]) for b in ("torch", "onnxruntime"))
        ratio = statistics.median(x / y for x, y in zip(means["onnxruntime"][name], means["torch"][name]))
        print(f"{name:<14} {t:9.1f} {o:9.1f} {ratio:12.2f}")


if __name__ == "__main__":
    main()
