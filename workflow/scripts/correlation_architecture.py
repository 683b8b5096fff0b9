"""Rule correlation_architecture: study architecture i, sampled from its own seeded stream, or one of
Table 1's wide and deep models."""
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))

from merino.correlation import sample_architecture  # noqa: E402
from merino.paper import load_reference, table1_models  # noqa: E402
from merino.provenance import provenance, write_json  # noqa: E402
from merino.space import SearchSpace  # noqa: E402

s = snakemake.params.settings
if "table1" in s:
    arch, source = table1_models(load_reference())[s["table1"]], "paper Table 1"
else:
    space = SearchSpace.from_config(s["search_space"], s["head_dim"])
    arch, source = sample_architecture(space, s["seed"], s["index"]), "sampled uniformly"
write_json(snakemake.output[0], {"architecture": arch.to_dict(), "source": source,
                                 "provenance": provenance(s, seed=s.get("seed"))})
print(arch, file=sys.stderr)
