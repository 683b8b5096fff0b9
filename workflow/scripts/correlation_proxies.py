"""Rule correlation_proxies: entropy, NTK condition number, DSS-Score and decoder params of one architecture."""

import sys
import time

import torch

from merino.entropy import EntropyConstants, EntropyLookupTable
from merino.model import config_for
from merino.provenance import provenance, write_json
from merino.proxies import all_proxies, proxy_batch
from merino.space import Architecture
from merino.token_cache import read_cache_meta
from merino.tokenizer import load_tokenizer

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p, i = snakemake.params, snakemake.input
torch.set_num_threads(snakemake.threads)
started = time.time()
arch = Architecture.load(i.architecture)
config = config_for(arch, p.model, load_tokenizer(i.tokenizer))
table = EntropyLookupTable.load(i.lookup, EntropyConstants.from_config(p.entropy, p.model["head_dim"]))
x = p.proxies
batch = proxy_batch(i.tokens, x["ntk_batch_size"], x["ntk_seq_len"], x["seed"])
result = all_proxies(
    arch,
    config,
    table,
    batch,
    ntk_inits=x["ntk_inits"],
    dss_seq_len=x["dss_seq_len"],
    seed=x["seed"],
    ntk_weights_only=x["ntk_weights_only"],
    fused_qkv=x["fused_qkv"],
    score_head=x["score_head"],
)
meta = read_cache_meta(i.tokens)
settings = {
    "model": p.model,
    "entropy": p.entropy,
    "proxies": x,
    "architecture": arch.to_dict(),
    "data": {"corpus_sha256": meta["corpus"]["sha256"], "tokenizer_sha256": meta["tokenizer"]["sha256"]},
}
write_json(
    snakemake.output[0],
    {
        "candidate": snakemake.wildcards.candidate,
        "architecture": arch.to_dict(),
        **result,
        "provenance": provenance(
            settings, {"lookup": i.lookup, "architecture": i.architecture}, seed=x["seed"], wall_s=time.time() - started
        ),
    },
)
print(result["scores"], file=sys.stderr)
