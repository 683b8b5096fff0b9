"""Peak memory of a model on a device, and the check of the cost model's ``memory`` against it.

:func:`peak_allocated` measures what torch's allocator holds at most while a function runs, above
its level before (CUDA: ``max_memory_allocated``; CPU: the profiler's memory events).
:func:`measure_peak_memory` applies it to one forward pass (the paper's latency setting: batch 1,
128 tokens); :mod:`merino.generation` to a whole cached generation, KV cache included.
:func:`check_memory_model` compares the cost model's ``memory`` budget pricing (weights + peak
activations + the KV cache at ``memory_kv_tokens``) with what was measured.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from .cost import CostModel
from .latency import device_name, dtype_name, merino_model, on_device, resolve_dtype, token_ids
from .runtime import forward
from .space import Architecture


def peak_allocated(fn: Callable[[], object], device: str | torch.device = "cpu") -> tuple[int, str]:
    """Bytes torch's allocator holds at most while ``fn()`` runs, above its level before the call, and how
    that was measured.  The result of ``fn`` is released inside the measurement (what it returned counts).

    CUDA: ``torch.cuda.max_memory_allocated`` above ``memory_allocated`` before.  CPU: the profiler's
    memory events (``profile_memory=True``), the running "Total Allocated" of torch's CPU allocator
    above its level before the first event.  Allocator caching, library workspaces outside torch's
    allocator and the Python heap do not count."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        out = fn()
        torch.cuda.synchronize(dev)
        peak = torch.cuda.max_memory_allocated(dev) - base
        del out
        return int(peak), "torch.cuda.max_memory_allocated"
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
        del out  # freed while profiling, so the allocator's running total returns to its level
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text())["traceEvents"]
    events = [e["args"] for e in events if e.get("name") == "[memory]"]
    # the running total is process-wide: its level before the first event is the baseline
    base = events[0]["Total Allocated"] - events[0]["Bytes"] if events else 0
    peak = max((e["Total Allocated"] for e in events), default=base) - base
    return int(peak), "torch.profiler memory events (running Total Allocated above its level before the call), CPU"


def resident_bytes(model: nn.Module) -> tuple[int, int]:
    """Bytes of the model's parameters and of its buffers (each shared tensor once)."""

    def total(tensors):
        seen = {t.data_ptr(): t.numel() * t.element_size() for t in tensors}
        return sum(seen.values())

    return total(model.parameters()), total(model.buffers())


def measure_peak_memory(
    model: nn.Module,
    device: str | torch.device = "cpu",
    batch_size: int = 1,
    seq_len: int = 128,
    dtype: str | torch.dtype = torch.float32,
    inputs=None,
    seed: int = 0,
) -> dict:
    """Weight bytes and the peak of activation memory during one forward pass (inference mode, no KV cache);
    see :func:`peak_allocated`.  Outputs (the logits) count."""
    dev, dt = torch.device(device), resolve_dtype(dtype)
    torch.manual_seed(seed)
    model = model.eval().to(device=dev, dtype=dt)
    x = token_ids(model, batch_size, seq_len, dev, seed) if inputs is None else on_device(inputs, dev, dt)
    weight_bytes, buffer_bytes = resident_bytes(model)
    with torch.inference_mode():
        forward(model, x)  # first call: lazy initialisation stays out of the peak
        peak, method = peak_allocated(lambda: forward(model, x), dev)
    return {
        "weight_bytes": weight_bytes,
        "buffer_bytes": buffer_bytes,
        "activation_peak_bytes": peak,
        "peak_bytes": weight_bytes + buffer_bytes + peak,
        "method": method,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "dtype": dtype_name(dt),
        "device_name": device_name(dev),
    }


def check_memory_model(
    cost: CostModel, archs: list[Architecture], convention: Mapping, device: str | torch.device = "cpu"
) -> list[dict]:
    """The cost model's ``memory`` (weights + peak activations at ``memory_seq_len`` + the KV cache at
    ``memory_kv_tokens``) against what each architecture, built with random weights, holds (fp32 only):
    :func:`measure_peak_memory` of one forward pass, plus the bytes of the KV cache that a cached forward
    over ``memory_kv_tokens`` tokens leaves (the cache's own tensors, counted exactly)."""
    from transformers.cache_utils import DynamicCache

    if cost.memory_bits != 32:
        raise ValueError(f"measured at fp32; the cost model counts {cost.memory_bits}-bit values")
    rows = []
    for arch in archs:
        model = merino_model(arch, convention)
        m = measure_peak_memory(model, device, seq_len=cost.memory_seq_len)
        kv = 0
        if cost.memory_kv_tokens:
            cache = DynamicCache(config=model.config)
            with torch.inference_mode():
                model(
                    token_ids(model, 1, cost.memory_kv_tokens, torch.device(device), 0),
                    past_key_values=cache,
                    use_cache=True,
                    logits_to_keep=1,
                )
            kv = kv_cache_bytes(cache)
        weights = cost.params(arch) * cost.memory_bits / 8
        model_bytes, model_kv = cost.memory_bytes(arch), cost.kv_cache_bytes(arch)
        measured = m["peak_bytes"] + kv
        rows.append(
            {
                "architecture": arch.to_dict(),
                "model_bytes": model_bytes,
                "measured_bytes": measured,
                "model_weight_bytes": weights,
                "measured_weight_bytes": m["weight_bytes"] + m["buffer_bytes"],
                "model_kv_cache_bytes": model_kv,
                "measured_kv_cache_bytes": kv,
                "kv_tokens": cost.memory_kv_tokens,
                "model_activation_bytes": model_bytes - weights - model_kv,
                "measured_activation_bytes": m["activation_peak_bytes"],
                "rel_error": model_bytes / measured - 1,
                "method": m["method"],
            }
        )
    return rows


def kv_cache_bytes(cache) -> int:
    """Bytes of the keys and values a transformers Cache holds."""
    return sum(
        t.numel() * t.element_size()
        for layer in cache.layers
        for t in (layer.keys, layer.values)
        if isinstance(t, torch.Tensor)
    )
