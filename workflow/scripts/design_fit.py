"""Rule design_fit: the unpublished design constants fitted to Table 8 (merino.design_fit)."""

import sys

from merino.cost import CostModel
from merino.design_fit import ConstantSet, best_set, candidate_sets, fit, plot, shapes_needed, spectra, summarise
from merino.entropy import EntropyConstants
from merino.paper import load_reference
from merino.provenance import Meter, provenance, write_table
from merino.space import SearchSpace

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p = snakemake.params
head_dim = p.model["head_dim"]
space = SearchSpace.from_config(p.search_space, head_dim)
base = EntropyConstants.from_config(p.entropy, head_dim)
named = {"default": ConstantSet.from_config("default", p.objective, base)}
named.update(
    {
        f"preset {k}": ConstantSet.from_config(
            f"preset {k}", v["objective"], EntropyConstants.from_config({**p.entropy, **v["entropy"]}, head_dim)
        )
        for k, v in p.presets.items()
    }
)
named["previous"] = ConstantSet.from_config("previous", "entropy", base)  # the global form we searched with before
sets = [*named.values(), *candidate_sets(p.fit["grid"], base.beta)]
reference = load_reference()
with Meter(cpu_watts=1.0) as meter:
    eigen = spectra(shapes_needed(space, reference, head_dim), base.seed, p.fit["draws"])
    df = fit(space, CostModel.from_config(p.model, p.cost), eigen, base, sets, reference)
summary = summarise(df)
best = best_set(summary)
labels = {**{k: k for k in named}, "best": best["set"]}  # label -> set; a set may carry several labels
tags = {s: ", ".join(k for k, v in labels.items() if v == s) for s in labels.values()}
summary["named"] = summary["set"].map(tags).fillna("")
df["named"] = df["set"].map(tags).fillna("")
prov = provenance(
    {
        "model": p.model,
        "cost": p.cost,
        "search_space": p.search_space,
        "entropy": p.entropy,
        "objective": p.objective,
        "design_fit": p.fit,
        "presets": p.presets,
    },
    wall_s=meter.wall_s,
)
write_table(df, snakemake.output.table, prov)
write_table(summary, snakemake.output.summary, prov)
plot(df, summary, {tag: s for s, tag in tags.items()}, snakemake.output.figure)
print(summary.sort_values("max_gap_pct").head(20).to_string(), file=sys.stderr)
