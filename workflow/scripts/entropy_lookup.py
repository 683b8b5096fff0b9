"""Rule entropy_lookup: expected entropy of every matrix shape of the search space (paper Fig. 2's table)."""

import sys

from merino.entropy import EntropyConstants, EntropyLookupTable
from merino.provenance import Meter, provenance
from merino.space import SearchSpace

sys.stderr = open(snakemake.log[0], "w", buffering=1)

s = snakemake.params.settings
space = SearchSpace.from_config(s["search_space"], s["head_dim"])
with Meter(cpu_watts=1.0) as meter:
    table = EntropyLookupTable.build(space, EntropyConstants.from_config(s["entropy"], s["head_dim"]))
table.save(snakemake.output[0], provenance(s, seed=s["entropy"]["seed"], wall_s=meter.wall_s))
print(f"{len(table.entries)} shapes in {meter.wall_s:.1f} s", file=sys.stderr)
