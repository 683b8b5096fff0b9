"""Build a latency lookup table for a scale's search space on this machine, then check its predictor
against whole models measured here: mean / max absolute relative error, bias, Spearman's rho and Kendall's
tau over sampled architectures (merino.latency.build_latency_table, check_predictor).

    PYTHONPATH=src python benchmarks/latency_predictor.py [--scale pretrain|correlation|paper]
        [--architectures 20] [--threads 1] [--seq-len 128] [--save lookup.json] [--json check.json]

`--scale` names an entry of config `scales`: `pretrain` (the embedded scaled-down scale, the default), or `paper`,
the paper's search space (512 layer shapes: minutes to build, and large models to check; lower --architectures).
"""

import argparse
import json
import time
from pathlib import Path

import yaml

from merino.latency import build_latency_table, check_predictor
from merino.space import SearchSpace

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=ROOT / "config/config.yaml")
    ap.add_argument("--scale", choices=("pretrain", "correlation", "paper"), default="pretrain")
    ap.add_argument("--device-label", default="cpu", help="the table's name in budgets (latency50ms-<label>)")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--passes", type=int, default=5, help="table: passes over all entries")
    ap.add_argument("--table-repeats", type=int, default=10, help="table: timed calls per entry and pass")
    ap.add_argument("--architectures", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=16, help="check: interleaved rounds of whole models")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", default=None, help="write the table here (JSON)")
    ap.add_argument("--json", default=None, help="write the check here (JSON)")
    args = ap.parse_args()

    cfg = yaml.safe_load(Path(args.config).read_text())
    scale = cfg["scales"][args.scale]
    convention, space_cfg = scale["model"], scale["search_space"]
    space = SearchSpace.from_config(space_cfg, convention["head_dim"])
    t0 = time.perf_counter()
    table = build_latency_table(
        space,
        convention,
        device_label=args.device_label,
        seq_len=args.seq_len,
        threads=args.threads,
        dtype=args.dtype,
        passes=args.passes,
        repeats=args.table_repeats,
        seed=args.seed,
        progress=True,
    )
    p = table.protocol
    print(
        f"table: {p['entries']} entries ({len(table.e_values)} x {len(table.f_values)} layers, "
        f"{len(table.widths) * (len(table.widths) - 1)} projections, constant) in {time.perf_counter() - t0:.1f} s "
        f"on {p['device_name']}, {p['threads']} threads, {p['dtype']}, {p['seq_len']} tokens; "
        f"median relative IQR of an entry {100 * p['median_relative_iqr']:.1f} %"
    )
    print(f"constant {table.constant_ms:.3f} ms; one layer {table.layer_ms.min():.3f}..{table.layer_ms.max():.3f} ms")
    if args.save:
        table.save(args.save)

    t0 = time.perf_counter()
    check = check_predictor(table, space, architectures=args.architectures, repeats=args.repeats, seed=args.seed)
    print(
        f"check: {check['architectures']} architectures, {check['repeats']} interleaved rounds, "
        f"{time.perf_counter() - t0:.1f} s; {check['statistic']} latency"
    )
    print(f"{'E':<20} {'F':<22} {'L':<10} {'predicted':>9} {'measured':>9} {'error':>7}")
    for r in check["rows"]:
        a = r["architecture"]
        print(
            f"{'-'.join(map(str, a['E'])):<20} {'-'.join(map(str, a['F'])):<22} {'-'.join(map(str, a['L'])):<10} "
            f"{r['predicted_ms']:9.2f} {r['measured_ms']:9.2f} {100 * r['rel_error']:6.1f}%"
        )
    print(
        f"mean |rel error| {100 * check['mean_abs_rel_error']:.1f} %, "
        f"median {100 * check['median_abs_rel_error']:.1f} %, max {100 * check['max_abs_rel_error']:.1f} %, "
        f"bias {100 * check['mean_rel_error']:+.1f} %; "
        f"Spearman rho {check['spearman']:.3f}, Kendall tau {check['kendall']:.3f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(check, indent=1) + "\n")


if __name__ == "__main__":
    main()
