"""Rule correlation_architecture: study architecture i, sampled from its own seeded stream, or one of
Table 1's wide and deep models."""

import sys

from merino.correlation import sample_architecture
from merino.paper import load_reference, table1_models
from merino.provenance import provenance, write_json
from merino.space import SearchSpace

sys.stderr = open(snakemake.log[0], "w", buffering=1)

s = snakemake.params.settings
if "table1" in s:
    arch, source = table1_models(load_reference())[s["table1"]], "paper Table 1"
else:
    space = SearchSpace.from_config(s["search_space"], s["head_dim"])
    arch, source = sample_architecture(space, s["seed"], s["index"]), "sampled uniformly"
write_json(
    snakemake.output[0],
    {"architecture": arch.to_dict(), "source": source, "provenance": provenance(s, seed=s.get("seed"))},
)
print(arch, file=sys.stderr)
