"""Rule search: Algorithm 1 for one objective and budget, certified by the exact solver."""
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w", buffering=1)
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))

from merino.cost import CostModel  # noqa: E402
from merino.entropy import EntropyConstants, EntropyLookupTable  # noqa: E402
from merino.latency import LatencyTable  # noqa: E402
from merino.provenance import provenance, write_json  # noqa: E402
from merino.search import search_record  # noqa: E402
from merino.space import SearchSpace  # noqa: E402

p = snakemake.params
space = SearchSpace.from_config(p.search_space, p.model["head_dim"])
table = EntropyLookupTable.load(snakemake.input.lookup, EntropyConstants.from_config(p.entropy, p.model["head_dim"]))
latency = LatencyTable.load(snakemake.input.latency) if "latency" in snakemake.input.keys() else None
record = search_record(space, table, CostModel.from_config(p.model, p.cost), snakemake.wildcards.objective,
                       snakemake.wildcards.budget, p.search, latency=latency)
settings = {k: getattr(p, k) for k in ("model", "cost", "search_space", "entropy", "search")}
inputs = {"lookup": snakemake.input.lookup, **({"latency": snakemake.input.latency} if latency else {})}
record["provenance"] = provenance(settings, inputs, seed=p.search["seed"],
                                  wall_s=record["search_cost"]["wall_s"])
write_json(snakemake.output[0], record)
print(record["architecture"], record["certificate"], file=sys.stderr)
