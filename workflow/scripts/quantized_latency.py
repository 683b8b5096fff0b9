"""Rule quantized_latency: one model's quantized checkpoints on integer kernels vs fp32, latency (the paper's
protocol, interleaved in one process), resident weight bytes and file size (Fig. 6's measured columns)."""

import sys
import time
from pathlib import Path

from merino.int_kernels import measure_quantized
from merino.provenance import provenance, write_json

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p, k = snakemake.params, snakemake.params.kernels
started = time.time()
checkpoints = dict(zip(p.schemes, snakemake.input.checkpoints, strict=True))
result = measure_quantized(checkpoints, k["latency"], k["compute"], k["row_block_size"], snakemake.threads, p.protocol)
inputs = {s: Path(d) / "model.safetensors" for s, d in checkpoints.items()}
write_json(
    snakemake.output[0],
    result
    | {
        "model": snakemake.wildcards.model,
        "provenance": provenance(
            {"kernels": k, "protocol": p.protocol}, inputs, seed=p.protocol["seed"], wall_s=time.time() - started
        ),
    },
)
print({s: (r["kernels"], r["ratio_to_fp32"]) for s, r in result["models"].items()}, file=sys.stderr)
