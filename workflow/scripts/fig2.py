"""Rule fig2: lookup-table entropy vs exact entropy of freshly initialised sampled architectures."""

import sys

import numpy as np
import pandas as pd

from merino.entropy import EntropyConstants, EntropyLookupTable, lookup_error
from merino.paper import load_reference, lookup_error_summary, plot_lookup_error
from merino.provenance import Meter, provenance, write_json
from merino.space import SearchSpace

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p = snakemake.params
head_dim = p.entropy["head_dim"]
space = SearchSpace.from_config(p.search_space, head_dim)
table = EntropyLookupTable.load(snakemake.input.lookup, EntropyConstants.from_config(p.entropy, head_dim))
genes = space.sample(np.random.default_rng(p.fig2["seed"]), p.fig2["architectures"])
with Meter(cpu_watts=1.0) as meter:
    df = pd.DataFrame(lookup_error([space.to_architecture(g) for g in genes], table, p.fig2["draws"], p.fig2["seed"]))
df.to_csv(snakemake.output.table, index=False)
plot_lookup_error(df, snakemake.output.figure, load_reference()["figure2_lookup_error"]["mean_relative_error"])
settings = {"search_space": p.search_space, "entropy": p.entropy, "fig2": p.fig2}
summary = {
    **lookup_error_summary(df),
    "provenance": provenance(settings, {"lookup": snakemake.input.lookup}, seed=p.fig2["seed"], wall_s=meter.wall_s),
}
write_json(snakemake.output.summary, summary)
print(summary, file=sys.stderr)
