"""Generation latency and memory on a device: what a user of a small LM on an IoT device waits for.

Beside the paper's protocol (one forward pass over 128 tokens, :mod:`merino.latency`), a model
decodes greedily with its KV cache (transformers' ``DynamicCache``, the same for MeRino and every
baseline, ``use_cache=True`` for all) at batch 1:

* **time to first token** (TTFT): the prefill of a ``prompt_len``-token prompt and the choice of the
  first new token (only the last position's logits are computed, ``logits_to_keep=1``, as
  ``generate`` does);
* **decode latency**: the time of each of the ``new_tokens - 1`` following one-token steps, and its
  inverse, decode tokens per second; end-to-end tokens per second count the prefill too;
* **memory**: the bytes of the KV cache at the end, ``prompt_len + new_tokens - 1`` tokens (its tensors,
  exactly) and the peak torch's allocator holds during one whole generation, weights included
  (:func:`merino.memory.peak_allocated`).

Models are timed interleaved in one process, one generation of each per round with the first model
rotating (as :func:`merino.latency.measure_models`), after ``warmup`` untimed two-token generations.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn
from transformers.cache_utils import DynamicCache

from .latency import (
    device_name,
    dtype_name,
    instantiate,
    intra_op_threads,
    load_average,
    resolve_dtype,
    summarize,
    synchronize,
    token_ids,
)
from .memory import kv_cache_bytes, peak_allocated, resident_bytes


def greedy_decode(model: nn.Module, prompt: torch.Tensor, new_tokens: int, timed: bool = False):
    """Greedy decoding of ``new_tokens`` tokens after ``prompt`` (B, T) with a KV cache, step by step.

    Returns the new tokens (B, new_tokens), the cache, and with ``timed`` the time to first token and
    each later step's time (s), synchronising CUDA around each."""
    dev = prompt.device
    cache = DynamicCache(config=model.config)
    synchronize(dev)
    start = time.perf_counter()
    out = model(prompt, past_key_values=cache, use_cache=True, logits_to_keep=1)
    token = out.logits[:, -1].argmax(-1, keepdim=True)
    synchronize(dev)
    first, steps, tokens = time.perf_counter() - start, [], [token]
    for _ in range(new_tokens - 1):
        start = time.perf_counter()
        out = model(token, past_key_values=out.past_key_values, use_cache=True, logits_to_keep=1)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        synchronize(dev)
        steps.append(time.perf_counter() - start)
        tokens.append(token)
    tokens = torch.cat(tokens, dim=1)
    return (tokens, out.past_key_values, first, steps) if timed else (tokens, out.past_key_values)


def measure_generation(
    models: Mapping[str, nn.Module | Callable[[], nn.Module]],
    device: str | torch.device = "cpu",
    *,
    prompt_len: int = 128,
    new_tokens: int = 128,
    warmup: int = 1,
    repeats: int = 3,
    threads: int | None = None,
    dtype: str | torch.dtype = torch.float32,
    seed: int = 0,
    memory: bool = True,
) -> dict:
    """Time to first token, decode latency per token, tokens/s and (``memory``) KV-cache and peak memory of
    greedy cached generation for every model (a module or a factory, built after ``torch.manual_seed(seed)``;
    random weights suffice: the decoding of exactly ``new_tokens`` tokens does not depend on them)."""
    if not models:
        raise ValueError("measure_generation needs at least one model")
    if min(prompt_len, new_tokens, repeats) < 1 or warmup < 0:
        raise ValueError(
            f"need prompt_len, new_tokens and repeats >= 1 and warmup >= 0; got prompt_len={prompt_len!r}, "
            f"new_tokens={new_tokens!r}, repeats={repeats!r}, warmup={warmup!r}"
        )
    dev, dt = torch.device(device), resolve_dtype(dtype)
    names = list(models)
    load_before = load_average()
    with intra_op_threads(threads) as n_threads, torch.inference_mode():
        torch.manual_seed(seed)
        runs = {}
        for name in names:
            model = instantiate(models[name], dev, dt)
            limit = getattr(model.config, "max_position_embeddings", None)
            if limit is not None and prompt_len + new_tokens - 1 > limit:
                raise ValueError(
                    f"{name}: prompt_len + new_tokens - 1 = {prompt_len + new_tokens - 1} positions "
                    f"exceed its {limit} (config latency.generation)"
                )
            runs[name] = (model, token_ids(model, 1, prompt_len, dev, seed))
        for _ in range(warmup):  # a short generation runs the prefill and the decode step once each
            for name in names:
                greedy_decode(*runs[name], min(new_tokens, 2))
        first = {name: [] for name in names}
        steps = {name: [] for name in names}
        for r in range(repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                _, _, ttft, step = greedy_decode(*runs[name], new_tokens, timed=True)
                first[name].append(ttft * 1e3)
                steps[name].append(np.asarray(step) * 1e3)
        result = {}
        for name in names:
            model, prompt = runs[name]
            decode = np.concatenate(steps[name]) if new_tokens > 1 else np.zeros(0)
            total_s = (np.asarray(first[name]) + np.array([s.sum() for s in steps[name]])) / 1e3
            row = {
                "ttft": summarize(first[name]),
                "decode_ms_per_token": float(decode.mean()) if decode.size else float("nan"),
                "decode_median_ms_per_token": float(np.median(decode)) if decode.size else float("nan"),
                "decode_tokens_per_s": 1e3 / float(decode.mean()) if decode.size else float("nan"),
                "tokens_per_s": float(np.mean(new_tokens / total_s)),
            }
            if memory:
                weights, buffers = resident_bytes(model)
                kv = []

                def generate(model=model, prompt=prompt, kv=kv):
                    tokens, cache = greedy_decode(model, prompt, new_tokens)
                    kv.append(kv_cache_bytes(cache))
                    return tokens, cache

                peak, method = peak_allocated(generate, dev)
                row.update(
                    {
                        "kv_cache_bytes": kv[0],
                        "kv_cache_tokens": prompt_len + new_tokens - 1,
                        "weight_bytes": weights + buffers,
                        "peak_bytes": weights + buffers + peak,
                        "memory_method": method,
                    }
                )
            result[name] = row
    return {
        "protocol": {
            "batch_size": 1,
            "prompt_len": prompt_len,
            "new_tokens": new_tokens,
            "warmup": warmup,
            "repeats": repeats,
            "decoding": "greedy, DynamicCache, use_cache=True, logits_to_keep=1",
            "threads": n_threads,
            "device": str(dev),
            "device_name": device_name(dev),
            "dtype": dtype_name(dt),
            "backend": "torch",
            "torch_version": torch.__version__,
            "load_average": [load_before, load_average()],
            "schedule": "round-robin: each round runs one generation of every model, the first model rotating",
        },
        "models": result,
    }
