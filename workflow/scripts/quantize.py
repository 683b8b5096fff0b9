"""Rule quantize: GPTQ (or RTN) weight-only quantization of one trained model, calibrated on the training split."""
import sys
import time
from pathlib import Path

import torch

sys.stderr = open(snakemake.log[0], "w", buffering=1)
sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))

from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from merino.model import register  # noqa: E402
from merino.provenance import provenance, write_json  # noqa: E402
from merino.quantize import QuantSpec, draw_calibration, quantize_model, save_quantized  # noqa: E402

q, i, out = snakemake.params.quantization, snakemake.input, Path(snakemake.output[0])
torch.set_num_threads(snakemake.threads)
started = time.time()
register()
model = AutoModelForCausalLM.from_pretrained(i.model).eval()
if torch.cuda.is_available():
    model = model.cuda()
c = q["calibration"]
calibration = draw_calibration(i.tokens, c["samples"], c["seq_len"], c["seed"])
spec = QuantSpec(bits=q["bits"], group_size=q["group_size"], method=q["method"], percdamp=q["percdamp"],
                 act_order=q["act_order"])
quantized = quantize_model(model, spec, calibration)
sizes = save_quantized(model, quantized, out)
AutoTokenizer.from_pretrained(i.model).save_pretrained(out)
write_json(out / "provenance.json", provenance({"quantization": q, "sizes": sizes},
                                               {"model": Path(i.model) / "model.safetensors",
                                                "tokens_meta": Path(i.tokens) / "meta.json"},
                                               seed=c["seed"], wall_s=time.time() - started))
print(sizes, file=sys.stderr)
