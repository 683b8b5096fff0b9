"""Rule latency_table_predicted: a datasheet device's latency lookup table, every entry PREDICTED (roofline)."""

import sys
import time

from merino.datasheet import Datasheet
from merino.provenance import provenance
from merino.roofline import build_predicted_table
from merino.space import SearchSpace

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p, w = snakemake.params, snakemake.wildcards
x = p.protocol
started = time.time()
space = SearchSpace.from_config(p.search_space, p.model["head_dim"])
table = build_predicted_table(
    space,
    p.model,
    Datasheet.from_config(w.device, p.datasheet),
    batch_size=x["batch_size"],
    seq_len=x["seq_len"],
    seed=x["seed"],
)
settings = {"datasheet": p.datasheet, "protocol": x, "model": p.model, "search_space": p.search_space}
table.save(snakemake.output[0], provenance(settings, seed=x["seed"], wall_s=time.time() - started))
print(table.describe(), file=sys.stderr)
