"""Rule table3: params, FLOPs, latency, generation speed and memory, perplexities; the paper's beside (Table 3)."""

import json
import sys
from pathlib import Path

from merino.paper import load_reference, read_summaries, row_cost, summary_paths, table3
from merino.provenance import provenance, write_table
from merino.tasks import PERPLEXITY_TASKS

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p = snakemake.params
paths = summary_paths(p.models, snakemake.input.evals)
summaries = read_summaries(paths)
costs = {m: row_cost(entry) for m, entry in p.costs.items()}
latency = json.loads(Path(snakemake.input.latency).read_text())
generation = json.loads(Path(snakemake.input.generation).read_text())
predicted_path = getattr(snakemake.input, "predicted", None)  # a datasheet device's PREDICTED latency, if chosen
predicted = json.loads(Path(predicted_path).read_text()) if predicted_path else None
df = table3(costs, summaries, load_reference(), p.paper_names, PERPLEXITY_TASKS, latency, predicted, generation)
write_table(
    df,
    snakemake.output[0],
    provenance(
        {
            "costs": p.costs,
            "paper_names": p.paper_names,
            "latency_protocol": latency["protocol"],
            "generation_protocol": generation["protocol"],
            "predicted_latency": predicted
            and {
                "protocol": predicted["protocol"],
                **{k: predicted.get("paper_comparison", {}).get(k) for k in ("datasheet", "fitted", "leave_one_out")},
            },
        },
        {
            **paths,
            "latency": snakemake.input.latency,
            "generation": snakemake.input.generation,
            **({"predicted": predicted_path} if predicted_path else {}),
        },
    ),
)
print(df.to_string(), file=sys.stderr)
