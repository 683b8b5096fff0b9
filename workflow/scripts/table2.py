"""Rule table2: zero-shot accuracy per task and average (paper Table 2), the paper's rows beside."""
import json
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))

from merino.paper import load_reference, row_cost, table2  # noqa: E402
from merino.provenance import provenance, write_table  # noqa: E402

p = snakemake.params
summaries = {m: json.loads((Path(d) / "summary.json").read_text())["tasks"] for m, d in zip(p.models, snakemake.input.evals)}
params = {m: row_cost(p.costs[m])["params"] for m in p.models}
df = table2(summaries, load_reference(), p.metric, p.paper_names, params)
write_table(df, snakemake.output[0], provenance({"metric": p.metric, "paper_names": p.paper_names},
                                                {m: Path(d) / "summary.json" for m, d in zip(p.models, snakemake.input.evals)}))
print(df.to_string(), file=sys.stderr)
