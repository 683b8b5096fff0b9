"""Time the three paper searches (60/110/160 GFLOPs, T=100000, M=512, K=64) under both selection
schemes of Algorithm 1 (``paper``: keep K, refill to M; ``generational``) and the exact solver, and
print each search's gap to the exact optimum.  Targets: each search <= 10 s on a 2-core machine;
gap <= 0.5 % (the paper's selection, the default).

    python benchmarks/search_speed.py [--lookup results/lookup/entropy_lookup.json] [--seeds 3] [--preset table8_fit]
"""

import argparse
import time
from pathlib import Path

import yaml

from merino.checks import apply_design_preset
from merino.cost import Budget, CostModel
from merino.entropy import EntropyConstants, EntropyLookupTable
from merino.search import SELECTIONS, EntropyObjective, evolutionary_search, exact_search
from merino.space import SearchSpace

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lookup", default=ROOT / "results/lookup/entropy_lookup.json")
    ap.add_argument("--config", default=ROOT / "config/config.yaml")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--preset", default="none", help="a design_fit.presets name (its objective and constants)")
    args = ap.parse_args()
    cfg = yaml.safe_load(Path(args.config).read_text())
    cfg["design_fit"]["preset"] = args.preset
    apply_design_preset(cfg)
    head_dim = cfg["scales"]["paper"]["model"]["head_dim"]
    space = SearchSpace.from_config(cfg["scales"]["paper"]["search_space"], head_dim)
    constants = EntropyConstants.from_config(cfg["entropy"], head_dim)
    if Path(args.lookup).exists():
        table = EntropyLookupTable.load(args.lookup, constants)
    else:
        print(f"{args.lookup} not found: building the lookup table first (about 2 minutes)")
        table = EntropyLookupTable.build(space, constants)
    cost = CostModel.from_config(cfg["scales"]["paper"]["model"], cfg["scales"]["paper"]["cost"])
    s = cfg["search"]
    objective = EntropyObjective.build(s["objective"], space, table)
    print(f"objective {s['objective']}, T={s['iterations']}, M={s['population']}, K={s['parents']}")
    optimum = {}
    for label in ("flops60G", "flops110G", "flops160G"):
        t0 = time.perf_counter()
        optimum[label] = exact_search(space, objective, cost, Budget.parse(label)).score
        print(f"exact solver {label:>9}: {time.perf_counter() - t0:.2f} s")
    for selection in SELECTIONS:
        for seed in range(args.seeds):
            times, gaps = [], []
            for label in ("flops60G", "flops110G", "flops160G"):
                t0 = time.perf_counter()
                found = evolutionary_search(
                    space,
                    objective,
                    cost,
                    Budget.parse(label),
                    iterations=s["iterations"],
                    population=s["population"],
                    parents=s["parents"],
                    seed=seed,
                    selection=selection,
                )
                times.append(time.perf_counter() - t0)
                gaps.append(100 * (optimum[label] - found.score) / optimum[label])
            print(
                f"{selection:>12} seed {seed}: "
                + ", ".join(f"{b} {t:.2f} s gap {g:.3f}%" for b, t, g in zip(("60G", "110G", "160G"), times, gaps))
                + f"  (slowest {max(times):.2f} s, target <= 10 s; worst gap {max(gaps):.3f}%, target <= 0.5 %)"
            )


if __name__ == "__main__":
    main()
