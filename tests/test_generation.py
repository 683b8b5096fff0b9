"""Generation latency and memory: greedy cached decoding like `generate`, TTFT, decode latency, KV cache."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from merino.generation import greedy_decode, measure_generation
from merino.latency import merino_model
from merino.paper import generation_columns
from merino.space import Architecture, Block

CONVENTION = {"vocab_size": 64, "embed_proj_dim": 32, "max_positions": 32, "head_dim": 16, "weight_sharing": True}
ARCH = Architecture((Block(16, 32, 2), Block(32, 64, 1)))


def gpt2():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=2, n_head=2)).eval()


@pytest.mark.parametrize("make", [lambda: merino_model(ARCH, CONVENTION), gpt2], ids=["merino", "gpt2"])
def test_greedy_decode_gives_generates_tokens(make):
    torch.manual_seed(1)
    model = make().eval()
    prompt = torch.randint(0, 64, (1, 7))
    with torch.inference_mode():
        tokens, cache, first, steps = greedy_decode(model, prompt, 6, timed=True)
        expected = model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=6,
            min_new_tokens=6,
            do_sample=False,
            pad_token_id=0,
        )[:, 7:]
    assert torch.equal(tokens, expected)
    assert cache.get_seq_length() == 7 + 5 and first > 0 and len(steps) == 5


def test_measure_generation_reports_latency_and_the_kv_cache_of_every_applied_layer():
    r = measure_generation(
        {"merino": lambda: merino_model(ARCH, CONVENTION), "gpt2": gpt2},
        prompt_len=8,
        new_tokens=4,
        repeats=2,
        threads=1,
    )
    p, m, g = r["protocol"], r["models"]["merino"], r["models"]["gpt2"]
    assert (p["prompt_len"], p["new_tokens"], p["repeats"], p["threads"], p["batch_size"]) == (8, 4, 2, 1, 1)
    assert len(m["ttft"]["samples_ms"]) == 2 and m["ttft"]["mean_ms"] > 0
    assert m["decode_ms_per_token"] > 0 and m["decode_tokens_per_s"] == pytest.approx(1e3 / m["decode_ms_per_token"])
    # the cache holds prompt + new - 1 tokens' keys and values (the last token is chosen, never fed back)
    assert m["kv_cache_tokens"] == 11
    assert m["kv_cache_bytes"] == 2 * 11 * (2 * 16 + 1 * 32) * 4
    assert g["kv_cache_bytes"] == 2 * 11 * 2 * 32 * 4
    weights = sum(t.numel() * 4 for t in {t.data_ptr(): t for t in gpt2().parameters()}.values())
    assert g["weight_bytes"] == weights and g["peak_bytes"] >= weights + g["kv_cache_bytes"]
    row = generation_columns(m)
    assert row["kv_cache_MB"] == m["kv_cache_bytes"] / 2**20 and row["ttft_ms"] == m["ttft"]["mean_ms"]


def test_generation_beyond_the_positions_is_refused_naming_the_model():
    with pytest.raises(ValueError, match=r"merino: prompt_len \+ new_tokens - 1 = 33 .*\(config latency.generation\)"):
        measure_generation({"merino": lambda: merino_model(ARCH, CONVENTION)}, prompt_len=30, new_tokens=4, repeats=1)
