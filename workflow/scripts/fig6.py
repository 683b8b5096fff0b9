"""Rule fig6: full precision vs INT8 vs INT4 accuracy and perplexity per model (paper Figure 6), with the
quantized models' measured latency, weight memory and the kernels that ran them."""

import json
import sys
from pathlib import Path

from merino.paper import load_reference, plot_quantization, quantization_table
from merino.provenance import provenance, write_table

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p, i = snakemake.params, snakemake.input
pairs = [(m, s) for m in p.models for s in p.schemes]  # the order of expand(): models outer, schemes inner
full = {m: json.loads((Path(d) / "summary.json").read_text())["tasks"] for m, d in zip(p.models, i.full)}
summaries = {k: json.loads((Path(d) / "summary.json").read_text()) for k, d in zip(pairs, i.quantized)}
quantized = {k: s["tasks"] for k, s in summaries.items()}
eval_kernels = {k: s.get("kernels", "unrecorded") for k, s in summaries.items()}
measured = {m: json.loads(Path(f).read_text())["models"] for m, f in zip(p.models, i.latency)}
sizes = {k: json.loads((Path(d) / "quantization.json").read_text())["sizes"] for k, d in zip(pairs, i.checkpoints)}
full_bytes = {m: sizes[m, p.schemes[0]]["fp32_model_bytes"] for m in p.models}  # the model before quantization
reference = load_reference()
df = quantization_table(full, quantized, sizes, full_bytes, p.metric, reference, measured, eval_kernels)
write_table(
    df,
    snakemake.output.table,
    provenance(
        {"models": p.models, "schemes": p.schemes, "metric": p.metric},
        {
            **{f"{m}/{s}": Path(d) / "summary.json" for (m, s), d in zip(pairs, i.quantized)},
            **{f"{m}/latency": f for m, f in zip(p.models, i.latency)},
        },
    ),
)
plot_quantization(df, snakemake.output.figure, reference["figure6_quantization"]["claim"])
print(df.to_string(), file=sys.stderr)
