"""Rule evaluate: one model through lm-eval (zero-shot), raw output kept beside a summary."""

import sys
import time
from pathlib import Path

import torch

from merino.evaluate import check_task_data, evaluate, save_raw, summarize
from merino.provenance import provenance, write_json
from merino.quantize import inference_kernels, load_quantized, read_quantized

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p, out = snakemake.params, Path(snakemake.output[0])
torch.set_num_threads(snakemake.threads)
e = p.evaluation
check_task_data(e["tasks"], e["task_data"])
device = e["device"] if e["device"] != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
started = time.time()
quantized = snakemake.input.get("quantized")  # a GPTQ checkpoint: integer kernels or its dequantized weights
model, kernels = None, None
if quantized:
    k = p.kernels
    used, kernels = inference_kernels(read_quantized(quantized)[0], k["evaluate"], k["compute"])
    if used == "integer" and device != "cpu":
        raise ValueError(
            f"config quantization.kernels.evaluate is 'integer' (onnxruntime's CPU kernels) but "
            f"evaluation.device resolves to {device!r}: set one of them to 'dequantize' / 'cpu'"
        )
    model = load_quantized(
        quantized,
        device,
        kernels=used,
        compute=k["compute"],
        row_block_size=k["row_block_size"],
        threads=snakemake.threads,
    )
results = evaluate(
    p.pretrained,
    e["tasks"],
    [snakemake.input.tasks, Path(snakemake.input.tasks) / "staged"],
    batch_size=e["batch_size"],
    device=device,
    limit=e["limit"],
    seed=e["seed"],
    bootstrap_iters=e["bootstrap_iters"],
    model=model,
)
save_raw(results, out)
inputs = {"tasks": Path(snakemake.input.tasks) / "tasks.json"}
for key in ("model", "quantized"):
    if snakemake.input.get(key):
        inputs[key] = Path(snakemake.input.get(key)) / "model.safetensors"
write_json(
    out / "summary.json",
    {
        "model": snakemake.wildcards.model,
        "scheme": snakemake.wildcards.get("scheme"),
        "pretrained": str(p.pretrained),
        "device": device,
        **({"kernels": kernels} if kernels else {}),
        "tasks": summarize(results),
        "provenance": provenance(
            {"evaluation": e, **({"kernels": p.kernels} if quantized else {})},
            inputs,
            seed=e["seed"],
            wall_s=time.time() - started,
        ),
    },
)
