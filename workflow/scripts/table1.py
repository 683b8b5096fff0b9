"""Rule table1: Table 1 with the trained wide and deep models' perplexities beside the paper's."""

import json
import sys
from pathlib import Path

import pandas as pd

from merino.correlation import table1_with_perplexity
from merino.provenance import provenance, write_table

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p, i = snakemake.params, snakemake.input
perplexity = {m: json.loads((Path(i[m]) / "metrics.json").read_text())["val_perplexity"] for m in ("wide", "deep")}
t = p.training
scale = (
    f"D={p.model['embed_proj_dim']}, unshared, {t['steps']} steps x {t['batch_size']} x {t['seq_len']} tokens "
    "(paper: LM1B, ~40M params, trained to convergence)"
)
df = table1_with_perplexity(pd.read_csv(i.entropy), perplexity, scale)
write_table(
    df,
    snakemake.output[0],
    provenance(
        {"model": p.model, "training": t},
        {"entropy_table": i.entropy, **{m: Path(i[m]) / "metrics.json" for m in ("wide", "deep")}},
    ),
)
print(df.to_string(), file=sys.stderr)
