"""Rule quantize: GPTQ (or RTN) weight-only quantization of one model, calibrated on the training split: a model
trained here, or a paper baseline from the Hub (the same calibration text in the baseline's own tokenizer)."""

import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from merino.model import register
from merino.provenance import provenance, write_json
from merino.quantize import QuantSpec, draw_calibration, quantize_model, retokenize, save_quantized
from merino.tokenizer import load_tokenizer

sys.stderr = open(snakemake.log[0], "w", buffering=1)

p, i, out = snakemake.params, snakemake.input, Path(snakemake.output[0])
q = p.quantization
torch.set_num_threads(snakemake.threads)
started = time.time()
register()
model = AutoModelForCausalLM.from_pretrained(p.pretrained, dtype=torch.float32).eval()  # no remote code
tokenizer = AutoTokenizer.from_pretrained(p.pretrained)
if torch.cuda.is_available():
    model = model.cuda()
c = q["calibration"]
calibration = draw_calibration(i.tokens, c["samples"], c["seq_len"], c["seed"])
if "model" not in i.keys():
    calibration = retokenize(calibration, load_tokenizer(i.tokenizer), tokenizer, p.pretrained)
spec = QuantSpec(
    bits=q["bits"], group_size=q["group_size"], method=q["method"], percdamp=q["percdamp"], act_order=q["act_order"]
)
quantized = quantize_model(model, spec, calibration)
sizes = save_quantized(model, quantized, out)
tokenizer.save_pretrained(out)
inputs = {
    "tokens_meta": Path(i.tokens) / "meta.json",
    **({"model": Path(i.model) / "model.safetensors"} if "model" in i.keys() else {}),
}
write_json(
    out / "provenance.json",
    provenance(
        {"quantization": q, "pretrained": str(p.pretrained), "sizes": sizes},
        inputs,
        seed=c["seed"],
        wall_s=time.time() - started,
    ),
)
print(sizes, file=sys.stderr)
