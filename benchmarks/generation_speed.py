"""Generation speed of MerinoForCausalLM against a GPT2LMHeadModel of equal FLOPs per token, same run.

MeRino is the paper's MeRino-52M structure (Table 8, via merino.paper / merino.space) at the paper's
convention (V = 50257, D = 768, head_dim 64, weight sharing), random weights.  The GPT-2 has width 768
(= MeRino's D, so the embeddings and the LM head, which dominate a decoding step, cost the same), the
depth and FFN width whose forward FLOPs (our cost model: sequence 1024, head not counted) equal
MeRino's, with the FFN ratio closest to GPT-2's 4.  Both decode greedily with a DynamicCache, batch 1,
SDPA attention, from the same prompt, exactly ``--new-tokens`` tokens; rounds alternate between the
models so a busy spell hits both.  Goal: MeRino / GPT-2 tokens/s >= 1.0.  MeRino without a cache
(every step re-runs the whole sequence) is timed once, for the cache's speed-up.

    python benchmarks/generation_speed.py [--prompt 32] [--new-tokens 128] [--rounds 3] [--threads 1]
"""

import argparse
import statistics
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from merino.cost import CostModel
from merino.model import MerinoConfig, MerinoForCausalLM
from merino.paper import load_reference, paper_structures
from merino.space import Architecture

STRUCTURE = "MeRino-52M"


def gpt2_of_equal_flops(cost: CostModel, target: float) -> tuple[GPT2LMHeadModel, float]:
    """GPT-2 of width D, depth and FFN width (multiple of 64) matching ``target`` forward FLOPs."""
    d = cost.embed_proj_dim

    def flops(ffn, depth):
        return cost.flops(Architecture.from_dict({"E": [d], "F": [ffn], "L": [depth]}))

    def ffn_for(depth):
        return min(range(64, 16 * d + 1, 64), key=lambda f: abs(flops(f, depth) - target))

    shapes = [(n, ffn_for(n)) for n in range(1, 25)]
    matching = [(n, f) for n, f in shapes if abs(flops(f, n) - target) <= 0.02 * target]  # within 2 %
    depth, ffn = min(matching, key=lambda s: abs(s[1] / d - 4))  # FFN ratio closest to GPT-2's 4
    config = GPT2Config(
        vocab_size=cost.vocab_size,
        n_positions=cost.max_positions,
        n_embd=d,
        n_inner=ffn,
        n_layer=depth,
        n_head=d // cost.head_dim,
        activation_function="relu",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=True,
        attn_implementation="sdpa",
    )
    return GPT2LMHeadModel(config).eval(), flops(ffn, depth)


def tokens_per_second(model, prompt: torch.Tensor, new_tokens: int, use_cache: bool = True) -> float:
    """New tokens per second of one greedy ``generate`` call that produces exactly ``new_tokens``."""
    t0 = time.perf_counter()
    out = model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        use_cache=use_cache,
        pad_token_id=0,
    )
    elapsed = time.perf_counter() - t0
    assert out.shape[1] == prompt.shape[1] + new_tokens, out.shape
    return new_tokens / elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompt", type=int, default=32, help="prompt tokens")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--uncached-tokens", type=int, default=128, help="new tokens of the (slower) uncached run")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    arch = paper_structures(load_reference())[STRUCTURE]
    cost = CostModel()  # the paper's convention
    torch.manual_seed(0)
    merino = MerinoForCausalLM(
        MerinoConfig.from_architecture(
            arch,
            vocab_size=cost.vocab_size,
            embed_proj_dim=cost.embed_proj_dim,
            max_position_embeddings=cost.max_positions,
            head_dim=cost.head_dim,
            weight_sharing=cost.shared,
        )
    ).eval()
    gpt2, gpt2_flops = gpt2_of_equal_flops(cost, cost.flops(arch))
    models = {"MeRino": merino, "GPT-2 equal FLOPs": gpt2}
    print(
        f"{STRUCTURE} {arch.to_dict()}: {cost.flops(arch) / 1e9:.1f} GFLOPs (seq {cost.seq_len}, head not counted), "
        f"{sum(p.numel() for p in merino.parameters()) / 1e6:.1f} M params, {merino.config.num_hidden_layers} "
        f"applied layers"
    )
    print(
        f"GPT-2 equal FLOPs E={gpt2.config.n_embd} F={gpt2.config.n_inner} L={gpt2.config.n_layer}: "
        f"{gpt2_flops / 1e9:.1f} GFLOPs, {sum(p.numel() for p in gpt2.parameters()) / 1e6:.1f} M params"
    )
    print(
        f"threads {torch.get_num_threads()}, batch 1, prompt {args.prompt}, {args.new_tokens} new tokens, "
        f"greedy, {args.rounds} rounds"
    )

    prompt = torch.randint(1, cost.vocab_size, (1, args.prompt), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        for model in models.values():
            tokens_per_second(model, prompt, 4)  # warm-up
        rates = {name: [] for name in models}
        for _ in range(args.rounds):
            for name, model in models.items():
                rates[name].append(tokens_per_second(model, prompt, args.new_tokens))
        tps = {name: statistics.median(r) for name, r in rates.items()}
        uncached = tokens_per_second(merino, prompt, args.uncached_tokens, use_cache=False)
        cached_short = tokens_per_second(merino, prompt, args.uncached_tokens)
    print(
        ", ".join(f"{name} {t:.1f} tokens/s" for name, t in tps.items())
        + " (cached, medians; rounds: "
        + "; ".join(f"{name} {', '.join(f'{r:.1f}' for r in rs)}" for name, rs in rates.items())
        + ")"
    )
    print(f"ratio MeRino / GPT-2 equal FLOPs = {tps['MeRino'] / tps['GPT-2 equal FLOPs']:.2f} (goal >= 1.0)")
    print(
        f"MeRino {args.uncached_tokens} new tokens: cached {cached_short:.1f} tokens/s, uncached {uncached:.1f} "
        f"tokens/s, cache speed-up {cached_short / uncached:.1f}x"
    )


if __name__ == "__main__":
    main()
