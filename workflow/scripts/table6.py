"""Rule table6: searches without gamma, with gamma, with gamma and alpha at one budget (paper Table 6)."""

import sys

from merino.comparisons import table6
from merino.paper import load_reference, read_summaries, row_cost, summary_paths
from merino.provenance import provenance, write_table
from merino.space import Architecture

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p = snakemake.params
paths = summary_paths(p.models, snakemake.input.evals)
costs = {m: row_cost(entry) for m, entry in p.costs.items()}
architectures = {m: Architecture.load(f) for m, f in zip(p.models, snakemake.input.architectures, strict=True)}
df = table6(p.rows, architectures, read_summaries(paths), costs, load_reference(), p.metric)
write_table(df, snakemake.output[0], provenance({"rows": p.rows, "costs": p.costs, "metric": p.metric}, paths))
print(df.to_string(), file=sys.stderr)
