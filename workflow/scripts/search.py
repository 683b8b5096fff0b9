"""Rule search: Algorithm 1 for one objective and budget: entropy (certified by the exact solver) or a
training-free proxy (NTK, DSS-Score, decoder params; the searches Fig. 5 and Table 4 compare with)."""

import sys
from pathlib import Path

from merino.cost import CostModel
from merino.entropy import EntropyConstants, EntropyLookupTable
from merino.provenance import provenance, write_json
from merino.search import search_record
from merino.space import SearchSpace

sys.stderr = open(snakemake.log[0], "w", buffering=1)

# torch, transformers and the latency module are imported only where needed: an entropy search needs none of
# them, and importing them took most of such a job's time (seconds per job, dozens of jobs per DAG)
p, i = snakemake.params, snakemake.input
space = SearchSpace.from_config(p.search_space, p.model["head_dim"])
table = EntropyLookupTable.load(i.lookup, EntropyConstants.from_config(p.entropy, p.model["head_dim"]))
latency = None
if "latency" in i.keys():
    from merino.latency import LatencyTable

    latency = LatencyTable.load(i.latency)
scorer = None
inputs = {"lookup": i.lookup, **({"latency": i.latency} if latency else {})}
if "tokens" in i.keys():  # a proxy objective: scored on models built like the ones trained here
    import torch

    from merino.model import config_for
    from merino.proxies import proxy_batch, proxy_scorer
    from merino.tokenizer import load_tokenizer

    torch.set_num_threads(snakemake.threads)
    x = p.search["proxies"]
    device = x["device"] if x["device"] != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = load_tokenizer(i.tokenizer)
    scorer = proxy_scorer(
        snakemake.wildcards.objective,
        lambda arch: config_for(arch, p.model, tokenizer),
        proxy_batch(i.tokens, x["ntk_batch_size"], x["ntk_seq_len"], x["seed"], device),
        ntk_inits=x["ntk_inits"],
        dss_seq_len=x["dss_seq_len"],
        seed=x["seed"],
        ntk_weights_only=x["ntk_weights_only"],
        fused_qkv=x["fused_qkv"],
        score_head=x["score_head"],
    )
    inputs["tokens"] = Path(i.tokens) / "meta.json"
record = search_record(
    space,
    table,
    CostModel.from_config(p.model, p.cost),
    snakemake.wildcards.objective,
    snakemake.wildcards.budget,
    p.search,
    latency=latency,
    scorer=scorer,
)
settings = {k: getattr(p, k) for k in ("model", "cost", "search_space", "entropy", "search")}
record["provenance"] = provenance(settings, inputs, seed=p.search["seed"], wall_s=record["search_cost"]["wall_s"])
write_json(snakemake.output[0], record)
print(record["architecture"], record["certificate"], file=sys.stderr)
