"""Rule latency_table: one device's latency lookup table for a scale (config scales) (latency budgets)."""

import sys
import time

from merino.latency import build_latency_table
from merino.provenance import provenance
from merino.space import SearchSpace

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p, w = snakemake.params, snakemake.wildcards
d, x, t = p.device, p.protocol, p.table
started = time.time()
space = SearchSpace.from_config(p.search_space, p.model["head_dim"])
table = build_latency_table(
    space,
    p.model,
    device_label=w.device,
    device=d["device"],
    batch_size=x["batch_size"],
    seq_len=x["seq_len"],
    warmup=x["warmup"],
    repeats=t["repeats"],
    passes=t["passes"],
    threads=d["threads"],
    dtype=d["dtype"],
    statistic=t["statistic"],
    seed=x["seed"],
    backend=d["backend"],
)
settings = {"device": d, "protocol": x, "table": t, "model": p.model, "search_space": p.search_space}
table.save(snakemake.output[0], provenance(settings, seed=x["seed"], wall_s=time.time() - started))
print(table.describe(), file=sys.stderr)
