"""Rule naive_scaling: a standard GPT scaled naively (depth or width only) to a budget."""

import sys

from merino.baselines import naive_architecture
from merino.cost import Budget, CostModel
from merino.provenance import provenance, write_json

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p, w = snakemake.params, snakemake.wildcards
arch, overrides = naive_architecture(
    CostModel.from_config(p.model, p.cost), Budget.parse(w.budget), w.scaling, **p.naive
)
cost = CostModel.from_config({**p.model, **overrides}, p.cost)
write_json(
    snakemake.output[0],
    {
        "architecture": arch.to_dict(),
        "model_overrides": overrides,
        "cost": cost.summary(arch),
        "source": f"naive {w.scaling} scaling",
        "provenance": provenance(
            {"model": p.model, "cost": p.cost, "naive": p.naive, "scaling": w.scaling, "budget": w.budget}
        ),
    },
)
print(arch, overrides, file=sys.stderr)
