"""Time the three paper searches (60/110/160 GFLOPs, T=100000, M=512, K=64) and the exact solver,
and print each search's gap to the exact optimum.  Target: the three EA searches together <= 10 s
on a 2-core machine; gap <= 0.1 %.

    python benchmarks/search_speed.py [--lookup results/lookup/entropy_lookup.json] [--seeds 3]
"""
import argparse
import time
from pathlib import Path

import numpy as np
import yaml

from merino.cost import Budget, CostModel
from merino.entropy import EntropyConstants, EntropyLookupTable
from merino.search import EntropyObjective, evolutionary_search, exact_search
from merino.space import SearchSpace

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lookup", default=ROOT / "results/lookup/entropy_lookup.json")
    ap.add_argument("--config", default=ROOT / "config/config.yaml")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    cfg = yaml.safe_load(Path(args.config).read_text())
    head_dim = cfg["model"]["head_dim"]
    space = SearchSpace.from_config(cfg["search_space"], head_dim)
    constants = EntropyConstants.from_config(cfg["entropy"], head_dim)
    if Path(args.lookup).exists():
        table = EntropyLookupTable.load(args.lookup, constants)
    else:
        print(f"{args.lookup} not found: building the lookup table first (about 2 minutes)")
        table = EntropyLookupTable.build(space, constants)
    cost = CostModel.from_config(cfg["model"], cfg["cost"])
    s = cfg["search"]
    objective = EntropyObjective.build(s["objective"], space, table)
    for seed in range(args.seeds):
        total, gaps = 0.0, []
        for label in ("flops60G", "flops110G", "flops160G"):
            budget = Budget.parse(label)
            t0 = time.perf_counter()
            found = evolutionary_search(space, objective, cost, budget, iterations=s["iterations"],
                                        population=s["population"], parents=s["parents"], seed=seed)
            total += time.perf_counter() - t0
            t0 = time.perf_counter()
            best = exact_search(space, objective, cost, budget)
            exact_s = time.perf_counter() - t0
            gaps.append(100 * (best.score - found.score) / best.score)
            print(f"seed {seed} {label:>9}: EA gap {gaps[-1]:.3f}%  (exact solver {exact_s:.1f} s)")
        print(f"seed {seed}: three EA searches {total:.2f} s (target <= 10 s), mean gap {np.mean(gaps):.3f}%")


if __name__ == "__main__":
    main()
