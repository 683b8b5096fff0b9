"""Rule table5: searched structures trained with and without block-wise sharing (paper Table 5)."""

import sys

from merino.comparisons import table5
from merino.paper import load_reference, read_summaries, row_cost, summary_paths
from merino.provenance import provenance, write_table

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p = snakemake.params
paths = summary_paths(p.models, snakemake.input.evals)
costs = {m: row_cost(entry) for m, entry in p.costs.items()}
df = table5(p.rows, read_summaries(paths), costs, load_reference(), p.metric)
write_table(df, snakemake.output[0], provenance({"rows": p.rows, "costs": p.costs, "metric": p.metric}, paths))
print(df.to_string(), file=sys.stderr)
