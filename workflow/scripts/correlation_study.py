"""Rule correlation_study: Figure 3, the per-architecture table and the rho / tau summary."""

import json
import sys
from pathlib import Path

from merino.correlation import add_entropy_variants, calibrate, plot_correlation, study_frame, summary_table
from merino.paper import load_reference
from merino.provenance import provenance, write_table

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p, i, o = snakemake.params, snakemake.input, snakemake.output
records = []
for proxies, model in zip(i.proxies, i.models):
    r = json.loads(Path(proxies).read_text())
    r["metrics"] = json.loads((Path(model) / "metrics.json").read_text())
    records.append(r)
df = add_entropy_variants(study_frame(records), p.entropy)
calibration = None
if p.calibration["enabled"]:
    calibration = calibrate(df, p.calibration, p.calibration["fraction"], p.calibration["seed"])
reference = load_reference()["figure3_correlation"]
claim = f"paper ({reference['architectures']} architectures, LM1B): {reference['claim']}"
summary = summary_table(df, p.bootstrap, calibration, claim)
settings = {
    "entropy": p.entropy,
    "bootstrap": p.bootstrap,
    "calibration": p.calibration,
    "architectures": len(df),
    "calibration_result": calibration,
}
inputs = {Path(f).stem: f for f in i.proxies}
write_table(df, o.table, provenance(settings, inputs, seed=p.bootstrap["seed"]))
write_table(summary, o.summary, provenance(settings, inputs, seed=p.bootstrap["seed"]))
steps = int(df["steps"].iloc[0])
plot_correlation(df, summary, o.figure, f"{len(df)} architectures, {steps} training steps each (ours)  |  {claim}")
print(summary.to_string(), file=sys.stderr)
