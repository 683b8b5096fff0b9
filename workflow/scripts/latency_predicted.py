"""Rule latency_predicted: every timed model's latency PREDICTED on a datasheet device (per-operator roofline);
for Table 3's datasheet device, compared with the paper's Jetson Nano measurements."""

import sys
import time

from merino.datasheet import IDEAL, Datasheet
from merino.latency import model_factory
from merino.paper import load_reference, paper_jetson_latency
from merino.provenance import provenance, write_json
from merino.roofline import compare_with_measured, predict_models, profile_models

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p, w = snakemake.params, snakemake.wildcards
x = p.protocol
started = time.time()
sheet = Datasheet.from_config(w.device, p.datasheet)
profiles = profile_models(
    {name: model_factory(entry) for name, entry in p.models.items()},
    batch_size=x["batch_size"],
    seq_len=x["seq_len"],
    seed=x["seed"],
)
result = predict_models(profiles, sheet, batch_size=x["batch_size"], seq_len=x["seq_len"])
if p.compare_with_paper:
    paper = {m: ms for m, ms in paper_jetson_latency(load_reference()).items() if m in profiles}
    result["paper_comparison"] = {
        "measured": "paper Table 3, NVIDIA Jetson Nano (batch 1, 128 tokens, mean of 16)",
        **compare_with_measured(profiles, paper, sheet.with_efficiency(**IDEAL)),
    }
result["provenance"] = provenance(
    {"datasheet": p.datasheet, "protocol": x, "models": p.models, "compare_with_paper": p.compare_with_paper},
    {n: e["architecture"] for n, e in p.models.items() if "architecture" in e},
    seed=x["seed"],
    wall_s=time.time() - started,
)
write_json(snakemake.output[0], result)
for name, r in result["models"].items():
    print(f"{name}: {r['predicted_ms']:.2f} ms predicted", file=sys.stderr)
