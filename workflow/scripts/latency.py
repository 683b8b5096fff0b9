"""Rule latency: every model timed on one device in one process, interleaved (paper Table 3 protocol)."""

import sys

from merino.latency import measure_models, model_factory
from merino.provenance import provenance, write_json

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p = snakemake.params
d, x = p.device, p.protocol
result = measure_models(
    {name: model_factory(entry) for name, entry in p.models.items()},
    d["device"],
    reference=p.reference,
    batch_size=x["batch_size"],
    seq_len=x["seq_len"],
    warmup=x["warmup"],
    repeats=x["repeats"],
    threads=d["threads"],
    dtype=d["dtype"],
    seed=x["seed"],
    backend=d["backend"],
)
result["device_label"] = snakemake.wildcards.device
result["provenance"] = provenance(
    {"device": d, "protocol": x, "models": p.models, "reference": p.reference},
    {n: e["architecture"] for n, e in p.models.items() if "architecture" in e},
    seed=x["seed"],
)
write_json(snakemake.output[0], result)
for name, r in result["models"].items():
    print(f"{name}: {r['mean_ms']:.2f} ms", file=sys.stderr)
