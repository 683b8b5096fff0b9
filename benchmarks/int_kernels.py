"""Integer kernels vs FP32 for a MeRino of the paper's size (Fig. 6's measured columns at scale): the MeRino-52M
structure (paper Table 8) with random weights, quantized by RTN (latency and memory do not depend on the values;
GPTQ writes the same format), INT8 (one grid per row) and INT4 (groups of 32 and 128) run on ONNX Runtime's
MatMulNBits (merino.int_kernels) with int8 and float32 compute, beside FP32 in torch.

Latency: the paper's protocol (batch 1, 128 tokens, mean of 16) and one decoding step's shape (batch 1, 1 token,
no cache: the same call on one token), every model interleaved in one process (merino.latency.measure_models);
ratios are the median of per-round ratios to FP32.  Memory: resident weight bytes (torch tensors + the kernel's
codes, scales and zero points) and each model's resident memory in its own fresh process: the RSS after loading
it and one forward pass of 128 tokens minus the RSS before (after a warm-up load of the FP32 model, freed, so that
lazy imports stay out; freed heap trimmed): weights, ONNX Runtime's prepacked copies, cached activations.

    PYTHONPATH=src python benchmarks/int_kernels.py [--model MeRino-52M] [--threads 1] [--repeats 16]
"""

import argparse
import ctypes
import gc
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml

from merino.int_kernels import resident_weight_bytes
from merino.latency import measure_models, merino_model
from merino.paper import load_reference, paper_structures
from merino.quantize import QuantSpec, load_quantized, quantize_model, save_quantized

ROOT = Path(__file__).resolve().parents[1]
SCHEMES = {
    "int8": QuantSpec(bits=8, group_size=-1, method="rtn"),
    "int4-g32": QuantSpec(bits=4, group_size=32, method="rtn"),
    "int4-g128": QuantSpec(bits=4, group_size=128, method="rtn"),
}
VARIANTS = {"fp32": ("int8", "dequantize", "int8")} | {
    f"{s} {c}": (s, "integer", c) for s in SCHEMES for c in ("int8", "float32")
}  # name -> scheme, kernels, compute


def load(variant: str, root: Path, threads: int):
    scheme, kernels, compute = VARIANTS[variant]
    return load_quantized(root / scheme, kernels=kernels, compute=compute, threads=threads)


def rss_bytes() -> int:
    """The resident set now, after handing freed heap back to the system (glibc's malloc_trim)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()


def child(variant: str, root: Path, threads: int) -> None:
    """Run in a fresh process: the RSS that loading ``variant`` and one forward pass of 128 tokens add."""
    torch.set_num_threads(threads)
    del_me = load("fp32", root, threads)  # lazy imports and one-off allocations out of the count
    del del_me
    before = rss_bytes()
    model = load(variant, root, threads)
    with torch.inference_mode():
        model(torch.zeros(1, 128, dtype=torch.long))
    print(json.dumps({"rss_bytes": rss_bytes() - before}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=ROOT / "config/config.yaml", help="its `model` section is MeRino's convention")
    ap.add_argument("--model", default="MeRino-52M", help="a paper Table 8 structure")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=16)
    ap.add_argument("--child", nargs=2, metavar=("VARIANT", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], Path(args.child[1]), args.threads)

    convention = yaml.safe_load(Path(args.config).read_text())["scales"]["paper"]["model"]
    arch = paper_structures(load_reference())[args.model]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, spec in SCHEMES.items():
            torch.manual_seed(0)
            model = merino_model(arch, convention).eval()
            save_quantized(model, quantize_model(model, spec), root / name)
        models = {v: load(v, root, args.threads) for v in VARIANTS}
        weights = {v: resident_weight_bytes(m) for v, m in models.items()}
        files = {v: (root / VARIANTS[v][0] / "model.safetensors").stat().st_size for v in VARIANTS}
        runs = {
            seq: measure_models(models, reference="fp32", seq_len=seq, repeats=args.repeats, threads=args.threads)
            for seq in (128, 1)
        }
        del models
        rss = {
            v: json.loads(
                subprocess.run(
                    [sys.executable, __file__, "--threads", str(args.threads), "--child", v, str(root)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            for v in VARIANTS
        }
    p = runs[128]["protocol"]
    print(
        f"{args.model} (random weights, RTN), {p['device_name']}, {p['threads']} threads, torch "
        f"{p['torch_version']}; {p['repeats']} interleaved rounds; x fp32 = median of per-round ratios"
    )
    print(
        f"{'model':<18} {'ms @128':>8} {'x fp32':>7} {'ms @1':>7} {'x fp32':>7} {'weights MB':>10} {'x fp32':>7} "
        f"{'RSS MB':>11} {'x fp32':>7} {'file MB':>8}"
    )
    for v in VARIANTS:
        prefill, decode = runs[128], runs[1]
        file_mb = "-" if v == "fp32" else f"{files[v] / 2**20:8.1f}"
        print(
            f"{v:<18} {prefill['models'][v]['mean_ms']:8.1f} {prefill['ratios'][v]['paired_median']:7.2f} "
            f"{decode['models'][v]['mean_ms']:7.2f} {decode['ratios'][v]['paired_median']:7.2f} "
            f"{weights[v] / 2**20:10.1f} {weights[v] / weights['fp32']:7.2f} "
            f"{rss[v]['rss_bytes'] / 2**20:11.1f} {rss[v]['rss_bytes'] / rss['fp32']['rss_bytes']:7.2f} "
            f"{file_mb:>8}"
        )


if __name__ == "__main__":
    main()
