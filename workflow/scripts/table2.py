"""Rule table2: zero-shot accuracy per task and average (paper Table 2), the paper's rows beside."""

import sys

from merino.paper import load_reference, read_summaries, row_cost, summary_paths, table2
from merino.provenance import provenance, write_table

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p = snakemake.params
paths = summary_paths(p.models, snakemake.input.evals)
summaries = read_summaries(paths)
params = {m: row_cost(p.costs[m])["params"] for m in p.models}
df = table2(summaries, load_reference(), p.metric, p.paper_names, params)
write_table(df, snakemake.output[0], provenance({"metric": p.metric, "paper_names": p.paper_names}, paths))
print(df.to_string(), file=sys.stderr)
