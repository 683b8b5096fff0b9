"""Rule generation: time to first token, decode latency, tokens/s and memory (KV cache included) of every model."""

import sys

from merino.generation import measure_generation
from merino.latency import model_factory
from merino.provenance import provenance, write_json

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p = snakemake.params
d, g = p.device, p.generation
result = measure_generation(
    {name: model_factory(entry) for name, entry in p.models.items()},
    d["device"],
    prompt_len=g["prompt_len"],
    new_tokens=g["new_tokens"],
    warmup=g["warmup"],
    repeats=g["repeats"],
    threads=d["threads"],
    dtype=d["dtype"],
    seed=g["seed"],
    memory=g["memory"],
)
result["device_label"] = snakemake.wildcards.device
result["provenance"] = provenance(
    {"device": d, "generation": g, "models": p.models},
    {n: e["architecture"] for n, e in p.models.items() if "architecture" in e},
    seed=g["seed"],
)
write_json(snakemake.output[0], result)
for name, r in result["models"].items():
    print(
        f"{name}: TTFT {r['ttft']['mean_ms']:.1f} ms, decode {r['decode_ms_per_token']:.2f} ms/token, "
        f"{r['tokens_per_s']:.1f} tokens/s",
        file=sys.stderr,
    )
