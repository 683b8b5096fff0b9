"""Rule pretrain: train one model (resuming from its checkpoint); several GPUs -> torchrun processes."""
import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from merino.data import load_tokenizer, read_cache_meta
from merino.model import config_for
from merino.provenance import provenance, write_json
from merino.space import Architecture
from merino.train import TrainConfig, launch_command, train

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p, out = snakemake.params, Path(snakemake.output[0])
arch = Architecture.load(snakemake.input.architecture)
tokenizer = load_tokenizer(snakemake.input.tokenizer)
model_config = config_for(arch, p.model, tokenizer)
cfg = TrainConfig(**p.training)
nodes = int(snakemake.resources.get("nodes", 1) or 1)
gpus_per_node = int(snakemake.resources.get("gpu", 0) or 0) // nodes
torch.set_num_threads(snakemake.threads)
started = time.time()
job = Path(p.checkpoints) / "job.json"
command = launch_command(job, gpus_per_node, nodes)
if command:
    job.parent.mkdir(parents=True, exist_ok=True)
    job.write_text(json.dumps({"model_config": model_config.to_dict(), "cache_dir": snakemake.input.tokens,
                               "out_dir": str(out), "work_dir": p.checkpoints, "training": asdict(cfg),
                               "tokenizer_dir": snakemake.input.tokenizer}))
    subprocess.run(command, check=True, stderr=sys.stderr, stdout=sys.stderr)   # PYTHONPATH: workflow/rules/common.smk
else:
    train(model_config, snakemake.input.tokens, out, cfg, work_dir=p.checkpoints, tokenizer=tokenizer)
processes = nodes * max(gpus_per_node, 1)
meta = read_cache_meta(snakemake.input.tokens)
settings = {"model": p.model, "training": p.training, "architecture": arch.to_dict(), "processes": processes,
            "data": {"corpus_sha256": meta["corpus"]["sha256"], "tokenizer_sha256": meta["tokenizer"]["sha256"],
                     "train_tokens": meta["splits"]["train"]["tokens"]}}
inputs = {"architecture": snakemake.input.architecture, "tokens_meta": Path(snakemake.input.tokens) / "meta.json"}
write_json(out / "provenance.json", provenance(settings, inputs, seed=cfg.seed, wall_s=time.time() - started))
