"""Rule table4: search cost of the entropy search vs the NTK-driven search (paper Table 4), paper beside."""

import json
import sys
from pathlib import Path

from merino.comparisons import table4
from merino.paper import load_reference, read_summaries, summary_paths
from merino.provenance import provenance, write_table

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p = snakemake.params
paths = summary_paths(p.models, snakemake.input.evals)
searches = {m: json.loads(Path(f).read_text()) for m, f in zip(p.models, snakemake.input.searches, strict=True)}
df = table4(p.rows, searches, read_summaries(paths), load_reference(), p.metric)
write_table(
    df,
    snakemake.output[0],
    provenance(
        {"rows": p.rows, "metric": p.metric},
        {**paths, **{f"search:{m}": f for m, f in zip(p.models, snakemake.input.searches)}},
    ),
)
print(df.to_string(), file=sys.stderr)
