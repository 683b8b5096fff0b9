"""Rule table1: entropy, effectiveness gamma and entropy with gamma of Table 1's wide and deep models."""
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))

from merino.cost import CostModel  # noqa: E402
from merino.entropy import EntropyConstants, EntropyLookupTable  # noqa: E402
from merino.paper import load_reference, table1  # noqa: E402
from merino.provenance import provenance, write_table  # noqa: E402

p = snakemake.params
table = EntropyLookupTable.load(snakemake.input.lookup, EntropyConstants.from_config(p.entropy, p.model["head_dim"]))
df = table1(load_reference(), CostModel.from_config(p.model, p.cost), table)
settings = {"model": p.model, "cost": p.cost, "entropy": p.entropy}
write_table(df, snakemake.output[0], provenance(settings, {"lookup": snakemake.input.lookup}))
print(df.to_string(), file=sys.stderr)
