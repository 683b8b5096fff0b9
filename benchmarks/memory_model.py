"""The cost model's `memory` (weights + peak activations, config cost.memory_seq_len tokens, fp32) against the
peak measured on this CPU (torch profiler memory events; merino.memory.check_memory_model), for sampled
architectures of each scaled-down scale (config scales) and the paper's Table 8 structures.

    PYTHONPATH=src python benchmarks/memory_model.py [--architectures 5]
"""

import argparse
from pathlib import Path

import yaml

from merino.cost import CostModel
from merino.latency import sample_architectures
from merino.memory import check_memory_model
from merino.paper import load_reference, paper_structures
from merino.space import SearchSpace

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=ROOT / "config/config.yaml")
    ap.add_argument("--architectures", type=int, default=5)
    args = ap.parse_args()
    cfg = yaml.safe_load(Path(args.config).read_text())
    scales = {f"scales.{name}": cfg["scales"][name] for name in ("pretrain", "correlation")}
    cases = []
    for name, d in scales.items():
        space = SearchSpace.from_config(d["search_space"], d["model"]["head_dim"])
        cases.append(
            (
                name,
                d["model"],
                CostModel.from_config(d["model"], d["cost"]),
                sample_architectures(space, args.architectures, seed=0),
            )
        )
    cases.append(
        (
            "paper Table 8",
            cfg["scales"]["paper"]["model"],
            CostModel.from_config(cfg["scales"]["paper"]["model"], cfg["scales"]["paper"]["cost"]),
            list(paper_structures(load_reference()).values()),
        )
    )
    print(
        f"{'scale':<19} {'E':<18} {'F':<20} {'model MB':>9} {'measured':>9} {'act model':>9} {'act meas':>9} "
        f"{'error':>7}"
    )
    for name, convention, cost, archs in cases:
        for r in check_memory_model(cost, archs, convention):
            a, mb = r["architecture"], 2**20
            print(
                f"{name:<19} {'-'.join(map(str, a['E'])):<18} {'-'.join(map(str, a['F'])):<20} "
                f"{r['model_bytes'] / mb:9.3f} {r['measured_bytes'] / mb:9.3f} "
                f"{r['model_activation_bytes'] / mb:9.3f} {r['measured_activation_bytes'] / mb:9.3f} "
                f"{100 * r['rel_error']:+6.1f}%"
            )
    print("weights: counted = measured exactly in every row; error = model / measured - 1 (positive: model above)")


if __name__ == "__main__":
    main()
