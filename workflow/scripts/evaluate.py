"""Rule evaluate: one model through lm-eval (zero-shot), raw output kept beside a summary."""
import sys
import time
from pathlib import Path

import torch

from merino.evaluate import check_task_data, evaluate, save_raw, summarize
from merino.provenance import provenance, write_json
from merino.quantize import load_quantized

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p, out = snakemake.params, Path(snakemake.output[0])
torch.set_num_threads(snakemake.threads)
e = p.evaluation
check_task_data(e["tasks"], e["task_data"])
device = e["device"] if e["device"] != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
started = time.time()
quantized = snakemake.input.get("quantized")   # a GPTQ checkpoint: loaded with its dequantized weights
results = evaluate(p.pretrained, e["tasks"], [snakemake.input.tasks, Path(snakemake.input.tasks) / "staged"],
                   batch_size=e["batch_size"], device=device, limit=e["limit"], seed=e["seed"],
                   bootstrap_iters=e["bootstrap_iters"], model=load_quantized(quantized, device) if quantized else None)
save_raw(results, out)
inputs = {"tasks": Path(snakemake.input.tasks) / "tasks.json"}
for key in ("model", "quantized"):
    if snakemake.input.get(key):
        inputs[key] = Path(snakemake.input.get(key)) / "model.safetensors"
write_json(out / "summary.json", {"model": snakemake.wildcards.model, "scheme": snakemake.wildcards.get("scheme"),
                                  "pretrained": str(p.pretrained),
                                  "device": device, "tasks": summarize(results),
                                  "provenance": provenance({"evaluation": e}, inputs, seed=e["seed"],
                                                           wall_s=time.time() - started)})
