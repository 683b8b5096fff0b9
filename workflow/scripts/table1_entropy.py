"""Rule table1_entropy: entropy, effectiveness gamma and entropy with gamma of Table 1's wide and deep models."""

import sys

from merino.cost import CostModel
from merino.entropy import EntropyConstants, EntropyLookupTable
from merino.paper import load_reference, table1
from merino.provenance import provenance, write_table

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p = snakemake.params
table = EntropyLookupTable.load(snakemake.input.lookup, EntropyConstants.from_config(p.entropy, p.model["head_dim"]))
df = table1(load_reference(), CostModel.from_config(p.model, p.cost), table)
settings = {"model": p.model, "cost": p.cost, "entropy": p.entropy}
write_table(df, snakemake.output[0], provenance(settings, {"lookup": snakemake.input.lookup}))
print(df.to_string(), file=sys.stderr)
