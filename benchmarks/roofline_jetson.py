"""The datasheet roofline (merino.roofline) against the paper's Table 3 Jetson Nano latency: Spearman's rho and
mean absolute % error of the nine models, with the datasheet's ideal factors, fitted (in-sample) and leave-one-out,
at fp16 and at fp32 (the dtype of the paper's measurement is not published), and the profiling time.

    PYTHONPATH=src python benchmarks/roofline_jetson.py [--config config/config.yaml] [--device jetson-nano]
"""

import argparse
import time
from pathlib import Path

import yaml

from merino.baselines import PAPER_BASELINES
from merino.datasheet import IDEAL, Datasheet
from merino.latency import merino_model, model_factory
from merino.paper import load_reference, paper_jetson_latency, paper_structures
from merino.roofline import compare_with_measured, profile_models

ROOT = Path(__file__).resolve().parents[1]

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
parser.add_argument("--device", default="jetson-nano")
args = parser.parse_args()
cfg = yaml.safe_load(Path(args.config).read_text())
reference = load_reference()
models = {n: model_factory({"baseline": n}) for n in PAPER_BASELINES}
models.update(
    {n: (lambda a=a: merino_model(a, cfg["scales"]["paper"]["model"])) for n, a in paper_structures(reference).items()}
)
started = time.perf_counter()
profiles = profile_models(models, seq_len=cfg["latency"]["protocol"]["seq_len"])
print(f"profiled {len(profiles)} models in {time.perf_counter() - started:.1f} s")
paper = paper_jetson_latency(reference)
entry = cfg["latency"]["datasheets"][args.device]
for dtype in ("float16", "float32"):
    sheet = Datasheet.from_config(args.device, {**entry, "dtype": dtype}).with_efficiency(**IDEAL)
    c = compare_with_measured(profiles, paper, sheet)
    for key in ("datasheet", "fitted", "leave_one_out"):
        a = c[key]
        print(
            f"{dtype} {key:>13}: rho {a['spearman']:.3f}  mean |error| {a['mean_abs_pct_error']:5.1f} %  "
            f"bias {a['mean_pct_error']:+6.1f} %"
        )
    print(f"{dtype} fitted factors: " + ", ".join(f"{k} {v:.3g}" for k, v in c["fitted_efficiency"].items()))
    for r in c["rows"]:
        print(
            f"  {r['model']:>14}: paper {r['measured_ms']:5.0f} ms  ideal {r['predicted_ms']:6.1f}  "
            f"fitted {r['predicted_fitted_ms']:6.1f}  leave-one-out {r['predicted_loo_ms']:6.1f}"
        )
