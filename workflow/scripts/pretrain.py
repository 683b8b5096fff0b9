"""Rule pretrain: train one model (resuming from its checkpoint); several GPUs -> torchrun processes."""

import sys
import time
from pathlib import Path

import torch

from merino.model import config_for
from merino.provenance import provenance, write_json
from merino.space import Architecture
from merino.token_cache import read_cache_meta
from merino.tokenizer import load_tokenizer
from merino.train import TrainConfig, TrainJob, launch

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p, out = snakemake.params, Path(snakemake.output[0])
arch = Architecture.load(snakemake.input.architecture)
model_config = config_for(arch, p.model, load_tokenizer(snakemake.input.tokenizer))
cfg = TrainConfig(**p.training)
nodes = int(snakemake.resources.get("nodes", 1) or 1)
gpus_per_node = int(snakemake.resources.get("gpu", 0) or 0) // nodes
torch.set_num_threads(snakemake.threads)
started = time.time()
launch(
    TrainJob(model_config, snakemake.input.tokens, str(out), p.checkpoints, cfg, snakemake.input.tokenizer),
    gpus_per_node,
    nodes,
)
meta = read_cache_meta(snakemake.input.tokens)
settings = {
    "model": p.model,
    "training": p.training,
    "architecture": arch.to_dict(),
    "processes": nodes * max(gpus_per_node, 1),
    "data": {
        "corpus_sha256": meta["corpus"]["sha256"],
        "tokenizer_sha256": meta["tokenizer"]["sha256"],
        "train_tokens": meta["splits"]["train"]["tokens"],
    },
}
inputs = {"architecture": snakemake.input.architecture, "tokens_meta": Path(snakemake.input.tokens) / "meta.json"}
write_json(out / "provenance.json", provenance(settings, inputs, seed=cfg.seed, wall_s=time.time() - started))
