"""ONNX export of a MeRino causal LM for edge runtimes (ONNX Runtime): a prefill graph and a cached decode step.

``prefill.onnx``: ``input_ids`` and ``position_ids`` (B, T) -> ``logits`` (B, T, V) and, per applied layer j
(``config.num_hidden_layers`` of them: a shared layer applied L_i times has L_i cache layers), ``present.key.j``
and ``present.value.j`` (B, nh_j, T, hs).  ``decode.onnx``: one new token, ``input_ids`` and ``position_ids``
(B, 1) plus ``past.key.j`` / ``past.value.j`` (B, nh_j, S, hs) -> ``logits`` (B, 1, V) and the presents
(B, nh_j, S + 1, hs).  Batch, sequence and cache lengths are dynamic; there is no padding mask (rows of
equal length).  Exported with the TorchScript exporter (``dynamo=False``: the dynamo one needs onnxscript).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers.cache_utils import DynamicCache

from .model import MerinoForCausalLM
from .runtime import OPSET


def cache_names(model: MerinoForCausalLM, prefix: str) -> list[str]:
    """``{prefix}.key.j``, ``{prefix}.value.j`` for every applied layer j, in graph order."""
    return [f"{prefix}.{kind}.{j}" for j in range(model.config.num_hidden_layers) for kind in ("key", "value")]


class MerinoOnnxStep(nn.Module):
    """The model with its cache as flat tensors: (input_ids, position_ids, *past) -> (logits, *present)."""

    def __init__(self, model: MerinoForCausalLM):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, *past: torch.Tensor):
        cache = DynamicCache()  # an empty one at prefill: no packed-sequence check, plain causal attention
        for j in range(len(past) // 2):
            cache.update(past[2 * j], past[2 * j + 1], j)
        out = self.model(input_ids, position_ids=position_ids, past_key_values=cache, use_cache=True)
        return (out.logits, *(t for layer in out.past_key_values.layers for t in (layer.keys, layer.values)))


def export_onnx(model: MerinoForCausalLM, directory: str | Path) -> dict[str, Path]:
    """Write ``prefill.onnx`` and ``decode.onnx`` (fp32) of ``model`` into ``directory``; returns their paths.
    ``model`` is put in eval mode and fp32."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = model.eval().float()
    step = MerinoOnnxStep(model)
    present, past = cache_names(model, "present"), cache_names(model, "past")
    # example inputs with batch 2 and lengths > 1, so that tracing specialises no dimension to 1
    ids = torch.randint(0, model.config.vocab_size, (2, 3))
    positions = torch.arange(3).expand(2, 3)
    with torch.no_grad():
        cache = step(ids, positions)[1:]
    paths = {"prefill": directory / "prefill.onnx", "decode": directory / "decode.onnx"}
    torch.onnx.export(
        step,
        (ids, positions),
        paths["prefill"],
        dynamo=False,
        opset_version=OPSET,
        input_names=["input_ids", "position_ids"],
        output_names=["logits", *present],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "seq"},
            "position_ids": {0: "batch", 1: "seq"},
            "logits": {0: "batch", 1: "seq"},
            **{n: {0: "batch", 2: "seq"} for n in present},
        },
    )
    torch.onnx.export(
        step,
        (ids[:, :1], positions[:, :1] + 3, *cache),
        paths["decode"],
        dynamo=False,
        opset_version=OPSET,
        input_names=["input_ids", "position_ids", *past],
        output_names=["logits", *present],
        dynamic_axes={
            "input_ids": {0: "batch"},
            "position_ids": {0: "batch"},
            "logits": {0: "batch"},
            **{n: {0: "batch", 2: "past"} for n in past},
            **{n: {0: "batch", 2: "total"} for n in present},
        },
    )
    return paths
