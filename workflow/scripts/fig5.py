"""Rule fig5: average accuracy per FLOPs budget of every search method and scaling rule (paper Figure 5)."""

import sys

from merino.comparisons import nas_comparison, plot_nas_comparison
from merino.paper import read_summaries, row_cost, summary_paths
from merino.provenance import provenance, write_table

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p = snakemake.params
paths = summary_paths(p.models, snakemake.input.evals)
costs = {m: row_cost(entry) for m, entry in p.costs.items()}
df = nas_comparison(p.methods, p.budgets, read_summaries(paths), costs, p.metric)
write_table(
    df,
    snakemake.output.table,
    provenance({"methods": p.methods, "budgets": p.budgets, "costs": p.costs, "metric": p.metric}, paths),
)
plot_nas_comparison(df, snakemake.output.figure)
print(df.to_string(), file=sys.stderr)
