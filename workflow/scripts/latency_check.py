"""Rule latency_check: the latency table's predictions against measured sampled architectures."""

import sys
import time

from merino.latency import LatencyTable, check_predictor
from merino.provenance import provenance, write_json
from merino.space import SearchSpace

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p = snakemake.params
started = time.time()
table = LatencyTable.load(snakemake.input.table)
space = SearchSpace.from_config(p.search_space, p.head_dim)
result = check_predictor(
    table,
    space,
    architectures=p.check["architectures"],
    seed=p.check["seed"],
    warmup=p.protocol["warmup"],
    repeats=p.protocol["repeats"],
    device=p.device["device"],
)
result["provenance"] = provenance(
    {"check": p.check, "protocol": p.protocol, "device": p.device},
    {"table": snakemake.input.table},
    seed=p.check["seed"],
    wall_s=time.time() - started,
)
write_json(snakemake.output[0], result)
print({k: v for k, v in result.items() if not isinstance(v, (list, dict))}, file=sys.stderr)
