"""Training throughput of MerinoForCausalLM against a GPT2LMHeadModel of equal FLOPs, same run.

The MeRino model is a searched architecture (default: the embedded default's 0.55 GFLOPs search,
or a fixed scales.pretrain structure when that result does not exist yet).  The GPT-2 baseline has
one uniform stack of width E = the MeRino model's widest block, FFN 4E, and the depth whose
forward FLOPs (our cost model, same sequence length) come closest to the MeRino model's.  Both
train with AdamW on the same random batches, the same threads and the same precision; rounds
alternate between the models so drift hits all.  Goal: ratio (MeRino / GPT-2 tokens/s) >= 1.0.
When every block has the same E and F, a GPT-2 with exactly MeRino's layer shapes (width E, FFN F,
sum L_i layers) is timed too: that ratio isolates the implementation from the architecture.
On CUDA the model FLOPs utilisation (6 x params x tokens/s over the bf16 peak) is printed too.

    python benchmarks/train_speed.py [--arch results/pretrain/search/entropy/flops0.55G.json]
        [--batch 16] [--seq 128] [--steps 10] [--rounds 3] [--device cpu|cuda] [--peak-tflops 989]
"""

import argparse
import statistics
import time
from pathlib import Path

import torch
import yaml

from merino.cost import CostModel
from merino.model import MerinoConfig, MerinoForCausalLM
from merino.space import Architecture

ROOT = Path(__file__).resolve().parents[1]
FALLBACK = {"E": [128, 192, 256, 256], "F": [512, 640, 896, 1024], "L": [2, 2, 1, 1]}


def merino_model(arch: Architecture, scale: dict) -> MerinoForCausalLM:
    m = scale["model"]
    return MerinoForCausalLM(
        MerinoConfig.from_architecture(
            arch,
            vocab_size=m["vocab_size"],
            embed_proj_dim=m["embed_proj_dim"],
            max_position_embeddings=m["max_positions"],
            head_dim=m["head_dim"],
            weight_sharing=m["weight_sharing"],
            norm=m.get("norm", "pre"),
        )
    )


def gpt2(scale: dict, width: int, ffn: int, depth: int):
    """A GPT-2 (ReLU, no dropout, tied head, SDPA attention) with ``depth`` layers of width/FFN given."""
    from transformers import GPT2Config, GPT2LMHeadModel

    m = scale["model"]
    config = GPT2Config(
        vocab_size=m["vocab_size"],
        n_positions=m["max_positions"],
        n_embd=width,
        n_inner=ffn,
        n_layer=depth,
        n_head=width // m["head_dim"],
        activation_function="relu",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=True,
        bos_token_id=m["vocab_size"] - 1,
        eos_token_id=m["vocab_size"] - 1,
    )
    config._attn_implementation = "sdpa"
    return GPT2LMHeadModel(config)


def gpt2_of_equal_flops(arch: Architecture, scale: dict):
    """GPT-2 of width max(E_i), FFN 4E, depth matching the MeRino model's forward FLOPs."""
    m, width = scale["model"], max(arch.widths)
    target = CostModel.from_config(m, scale["cost"]).flops(arch)
    uniform = CostModel.from_config({**m, "embed_proj_dim": width}, scale["cost"])
    stack = lambda n: Architecture.from_dict({"E": [width], "F": [4 * width], "L": [n]})  # noqa: E731
    depth = min(range(1, 65), key=lambda n: abs(uniform.flops(stack(n)) - target))
    return gpt2(scale, width, 4 * width, depth), target, uniform.flops(stack(depth))


def tokens_per_second(model, batch: torch.Tensor, steps: int, device: torch.device) -> float:
    """Tokens/s over ``steps`` AdamW steps (forward, backward, update) after two warm-up steps."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step():
        with autocast:
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch.numel() / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=ROOT / "config/config.yaml")
    ap.add_argument("--arch", default=ROOT / "results/pretrain/search/entropy/flops0.55G.json")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak for MFU (H100 SXM: 989)")
    args = ap.parse_args()
    scale = yaml.safe_load(Path(args.config).read_text())["scales"]["pretrain"]
    if Path(args.arch).exists():
        arch, source = Architecture.load(args.arch), str(args.arch)
    else:
        arch, source = Architecture.from_dict(FALLBACK), "fixed scales.pretrain structure (search result not found)"
    device = torch.device(args.device)
    torch.manual_seed(0)
    merino = merino_model(arch, scale).to(device)
    equal, merino_flops, gpt2_flops = gpt2_of_equal_flops(arch, scale)
    models = {"MeRino": merino, "GPT-2 equal FLOPs": equal.to(device)}
    print(
        f"MeRino {arch.to_dict()} from {source}: {merino_flops / 1e9:.3f} GFLOPs, "
        f"{sum(p.numel() for p in merino.parameters()) / 1e6:.2f} M params"
    )
    print(
        f"GPT-2 equal FLOPs  E={equal.config.n_embd} F={4 * equal.config.n_embd} L={equal.config.n_layer}: "
        f"{gpt2_flops / 1e9:.3f} GFLOPs, {sum(p.numel() for p in equal.parameters()) / 1e6:.2f} M params"
    )
    if len(set(arch.widths)) == 1 and len(set(arch.ffn_dims)) == 1:
        same = gpt2(scale, arch.widths[0], arch.ffn_dims[0], arch.n_layers)
        models["GPT-2 same shapes"] = same.to(device)
        print(f"GPT-2 same shapes  E={arch.widths[0]} F={arch.ffn_dims[0]} L={arch.n_layers} (unshared)")
    print(
        f"device {device}, threads {torch.get_num_threads()}, batch {args.batch} x {args.seq} tokens, "
        f"{args.steps} steps x {args.rounds} rounds"
    )
    batch = torch.randint(0, scale["model"]["vocab_size"], (args.batch, args.seq), device=device)
    rates = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            rates[name].append(tokens_per_second(model, batch, args.steps, device))
    tps = {name: statistics.median(r) for name, r in rates.items()}
    print(", ".join(f"{name} {t:,.0f} tokens/s" for name, t in tps.items()) + " (medians)")
    print(f"ratio MeRino / GPT-2 equal FLOPs = {tps['MeRino'] / tps['GPT-2 equal FLOPs']:.2f} (goal >= 1.0)")
    if "GPT-2 same shapes" in tps:
        print(
            f"ratio MeRino / GPT-2 same shapes = {tps['MeRino'] / tps['GPT-2 same shapes']:.2f} (implementation alone)"
        )
    if device.type == "cuda":
        for name, model in models.items():
            n = sum(p.numel() for p in model.parameters())
            print(f"{name} MFU {6 * n * tps[name] / (args.peak_tflops * 1e12):.1%} (6 x params x tokens/s)")


if __name__ == "__main__":
    main()
