"""Rule table8: paper Table 8 structures and our searched ones, costs beside the paper's."""

import json
import sys

import pandas as pd

from merino.cost import CostModel
from merino.entropy import EntropyConstants, EntropyLookupTable
from merino.paper import load_reference, table8
from merino.provenance import provenance, write_table

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p = snakemake.params
table = EntropyLookupTable.load(snakemake.input.lookup, EntropyConstants.from_config(p.entropy, p.model["head_dim"]))
searched = {r["budget"]["label"]: r for r in (json.loads(open(f).read()) for f in snakemake.input.searches)}
fit = pd.read_csv(snakemake.input.fit, keep_default_na=False)
df = table8(load_reference(), CostModel.from_config(p.model, p.cost), table, searched, p.objective, fit)
inputs = {
    "lookup": snakemake.input.lookup,
    "design_fit": snakemake.input.fit,
    **{f"search:{f}": f for f in snakemake.input.searches},
}
write_table(df, snakemake.output[0], provenance({"model": p.model, "cost": p.cost, "entropy": p.entropy}, inputs))
print(df.to_string(), file=sys.stderr)
