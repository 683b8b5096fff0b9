"""Weight-only post-training quantization: GPTQ and round-to-nearest (RTN) on one grid.

GPTQ is Algorithm 1 of Frantar, Ashkboos, Hoefler and Alistarh, "GPTQ: Accurate Post-Training
Quantization for Generative Pre-trained Transformers" (ICLR 2023), in plain torch:

* :func:`gptq_quantize` quantizes one weight matrix W (rows x columns) given the Hessian
  H = 2 X Xᵀ of its layer-wise loss ||WX - ŴX||² over the calibration inputs X: dampening
  (``percdamp`` of the mean diagonal), dead columns (H_jj = 0) zeroed, the upper Cholesky factor
  of H⁻¹, columns quantized one at a time with the error spread over the columns not yet
  quantized, in lazy blocks of ``block_size`` columns (the two loops of Algorithm 1).  Optional
  ``act_order`` (columns by decreasing H_jj; the paper's "act-order" heuristic), off by default.
* :func:`rtn_quantize` is the round-to-nearest baseline with the same grid.

The grid is asymmetric min-max per output row (the range always contains 0), over groups of
``group_size`` consecutive input columns (-1: one group per row).  A group's grid is taken from its
weights when its first column is reached, i.e. after the error updates of all columns before it, so
the lazy-batch result equals the column-by-column one exactly.  (The paper's reference code does the
same except that a group starting inside a block sees its weights without the updates of that
block's earlier columns; with ``group_size`` a multiple of ``block_size``, e.g. 128 and 128, the two
agree.)  ``static_groups`` takes every grid from the original weights instead (the reference code's
option, and what llmcompressor does); ``act_order`` with groups implies it, so that codes stay in
the original column order.

:func:`quantize_model` quantizes a whole causal LM sequentially, as the paper's implementation does
(each part calibrated on the outputs of the already-quantized parts before it): every ``nn.Linear``
and transformers ``Conv1D`` except the output embedding, in the order the forward pass first
applies them, each one's Hessian gathered by a forward pre-hook while the calibration batch runs
through the model whose earlier modules are already quantized.
For MeRino these are the attention (qkv, out) and FFN (fc_in, fc_out) matrices of every layer and
the width projections; token and position embeddings, LayerNorms, biases and the tied LM head stay
in full precision (the paper's code likewise quantizes the transformer layers only).  A
layer that MeRino applies L_i times (weight sharing) is ONE module: its hook fires L_i times per
forward, its Hessian sums over all L_i applications, and it is quantized once.

:func:`save_quantized` writes the integer codes (unsigned, since the grid is asymmetric with a zero
point: 8-bit as uint8, 4- and 2-bit packed two and four to a uint8),
per-group scales and zero points, the unquantized tensors and the model config; :func:`load_quantized`
rebuilds the model from its config, either with the *dequantized* weights (``kernels="dequantize"``: the
ordinary float forward, CPU or CUDA) or with every quantized matrix executed as integers by ONNX Runtime's
MatMulNBits CPU kernel (``kernels="integer"``, :mod:`merino.int_kernels`), and reports which ran.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import save_file
from transformers.pytorch_utils import Conv1D

from .provenance import share_mode
from .token_cache import PackedDataset
from .train import unalias

FORMAT = "merino-quantized/1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "quantization.json"
METHODS = ("gptq", "rtn")


@dataclass(frozen=True)
class QuantSpec:
    """How to quantize: ``bits`` (2..8), ``group_size`` input columns per grid (-1: one per row),
    ``method`` (gptq | rtn), and GPTQ's ``percdamp``, ``act_order``, ``static_groups``, ``block_size``."""

    bits: int = 8
    group_size: int = 128
    method: str = "gptq"
    percdamp: float = 0.01
    act_order: bool = False
    static_groups: bool = False
    block_size: int = 128

    def __post_init__(self):
        if not (isinstance(self.bits, int) and 2 <= self.bits <= 8):
            raise ValueError(f"bits must be an integer from 2 to 8, got {self.bits!r}")
        if not (isinstance(self.group_size, int) and (self.group_size == -1 or self.group_size >= 1)):
            raise ValueError(
                f"group_size must be -1 (one group per row) or a positive integer, got {self.group_size!r}"
            )
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not self.percdamp >= 0:
            raise ValueError(f"percdamp must be >= 0, got {self.percdamp!r}")
        if not (isinstance(self.block_size, int) and self.block_size >= 1):
            raise ValueError(f"block_size must be a positive integer, got {self.block_size!r}")


# ---- the grid ----------------------------------------------------------------------------------------------
def _grid(w: torch.Tensor, maxq: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Asymmetric min-max grid of each row of ``w`` (rows, cols): scale and integer zero point, (rows,)
    each.  The range is widened to contain 0; an all-zero row gets [-1, 1] (as the GPTQ reference)."""
    lo = w.min(dim=1).values.clamp(max=0)
    hi = w.max(dim=1).values.clamp(min=0)
    flat = hi == lo
    lo, hi = torch.where(flat, -1.0, lo), torch.where(flat, 1.0, hi)
    scale = (hi - lo) / maxq
    return scale, torch.round(-lo / scale)


def _codes(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, maxq: int) -> torch.Tensor:
    """Integer codes in [0, maxq] of ``w`` (rows, k) on the per-row grid (scale, zero): (rows, k) float."""
    return torch.clamp(torch.round(w / scale[:, None]) + zero[:, None], 0, maxq)


@dataclass
class QuantizedWeight:
    """A quantized (rows, cols) weight: ``codes`` uint8 in [0, 2**bits - 1], ``scales`` float32 and
    ``zeros`` uint8 of shape (rows, groups); group g covers columns [g*group_size, (g+1)*group_size).
    ``stats``: how it was made (calibration calls and tokens, GPTQ's loss)."""

    codes: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor
    bits: int
    group_size: int
    stats: dict = field(default_factory=dict)

    def dequantize(self) -> torch.Tensor:
        """scale * (code - zero), float32 (rows, cols)."""
        cols = self.codes.shape[1]
        scale = self.scales.float().repeat_interleave(self.group_size, dim=1)[:, :cols]
        zero = self.zeros.float().repeat_interleave(self.group_size, dim=1)[:, :cols]
        return scale * (self.codes.float() - zero)


def _group_size(spec: QuantSpec, cols: int) -> int:
    return cols if spec.group_size == -1 else min(spec.group_size, cols)


def _pack_weight(codes, scales, zeros, spec: QuantSpec, cols: int, stats: dict | None = None) -> QuantizedWeight:
    return QuantizedWeight(
        codes.to(torch.uint8).cpu(),
        scales.float().cpu(),
        zeros.to(torch.uint8).cpu(),
        spec.bits,
        _group_size(spec, cols),
        stats or {},
    )


def rtn_quantize(W: torch.Tensor, spec: QuantSpec) -> QuantizedWeight:
    """Round-to-nearest on the grid of :func:`gptq_quantize`: every weight to its group's nearest level."""
    W = W.detach().float()
    rows, cols = W.shape
    maxq, gs = 2**spec.bits - 1, _group_size(spec, cols)
    n_groups = math.ceil(cols / gs)
    scales, zeros, codes = W.new_zeros(rows, n_groups), W.new_zeros(rows, n_groups), torch.zeros_like(W)
    for g in range(n_groups):
        part = slice(g * gs, (g + 1) * gs)
        scales[:, g], zeros[:, g] = _grid(W[:, part], maxq)
        codes[:, part] = _codes(W[:, part], scales[:, g], zeros[:, g], maxq)
    return _pack_weight(codes, scales, zeros, spec, cols)


def _inverse_hessian_factor(H: torch.Tensor, percdamp: float) -> torch.Tensor:
    """Upper Cholesky factor U of (H + λI)⁻¹, λ = percdamp * mean(diag H) (Algorithm 1's Cholesky(H⁻¹)ᵀ)."""
    H = H + percdamp * torch.mean(torch.diag(H)) * torch.eye(len(H), dtype=H.dtype, device=H.device)
    return torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)


def gptq_quantize(
    W: torch.Tensor, H: torch.Tensor, spec: QuantSpec, dtype: torch.dtype = torch.float32
) -> QuantizedWeight:
    """GPTQ (Frantar et al. 2023, Algorithm 1) of the weight ``W`` (rows, cols) of a layer y = W x with
    input Hessian ``H`` = 2 X Xᵀ (cols, cols); any positive multiple of it gives the same result.

    Columns (in ``act_order`` when set) are quantized one at a time; the error of column j, divided by
    U_jj, is spread over the later columns of its block through row j of U = chol((H + λI)⁻¹)ᵀ, and
    a block's accumulated errors reach the columns after it in one matmul (lazy batch updates).
    Dead columns (H_jj = 0: the input is always 0 there) are set to 0.  ``stats["loss"]`` is the
    paper's Σ (w - q)² / (2 U_jj²), an estimate of the layer's output error.  Work in ``dtype``."""
    if spec.method != "gptq":
        raise ValueError(f"gptq_quantize needs spec.method 'gptq', got {spec.method!r}")
    W = W.detach().to(dtype).clone()
    H = H.detach().to(device=W.device, dtype=dtype).clone()
    rows, cols = W.shape
    if H.shape != (cols, cols):
        raise ValueError(f"Hessian of shape {tuple(H.shape)} does not fit a weight with {cols} columns")
    maxq, gs = 2**spec.bits - 1, _group_size(spec, cols)
    n_groups = math.ceil(cols / gs)
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    scales, zeros = W.new_zeros(rows, n_groups), W.new_zeros(rows, n_groups)
    static = spec.static_groups or (spec.act_order and n_groups > 1)
    if static:  # every grid from the weights as they are before any update, in the original column order
        for g in range(n_groups):
            scales[:, g], zeros[:, g] = _grid(W[:, g * gs : (g + 1) * gs], maxq)
    order = torch.argsort(torch.diag(H), descending=True) if spec.act_order else torch.arange(cols, device=W.device)
    W, H = W[:, order], H[order][:, order]
    U = _inverse_hessian_factor(H, spec.percdamp)
    codes, loss = torch.zeros_like(W), torch.zeros((), dtype=dtype, device=W.device)
    group_of = (order // gs).tolist()  # the group of the column quantized j-th
    for i1 in range(0, cols, spec.block_size):
        i2 = min(i1 + spec.block_size, cols)
        W1, E1 = W[:, i1:i2].clone(), torch.zeros(rows, i2 - i1, dtype=dtype, device=W.device)
        for i in range(i2 - i1):
            j = i1 + i
            g = group_of[j]
            if not static and j % gs == 0:  # group g starts here: its grid from its current weights
                ahead = (
                    W[:, i2 : j + gs] - E1[:, :i] @ U[i1:j, i2 : j + gs]
                )  # columns past this block, brought up to date
                scales[:, g], zeros[:, g] = _grid(torch.cat([W1[:, i : i + gs], ahead], dim=1), maxq)
            w = W1[:, i]
            codes[:, j] = _codes(w[:, None], scales[:, g], zeros[:, g], maxq)[:, 0]
            q = scales[:, g] * (codes[:, j] - zeros[:, g])
            err = (w - q) / U[j, j]
            loss += err.square().sum() / 2
            W1[:, i:] -= err[:, None] * U[j, i1 + i : i2][None, :]
            E1[:, i] = err
        W[:, i2:] -= E1 @ U[i1:i2, i2:]  # lazy batch update of all later columns
    codes = codes[:, torch.argsort(order)]
    return _pack_weight(codes, scales, zeros, spec, cols, {"loss": float(loss), "dead_columns": int(dead.sum())})


# ---- calibration ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Calibration:
    """Calibration token sequences (n_samples, seq_len) and a JSON-able description of where they came from."""

    tokens: torch.Tensor
    description: dict


def draw_calibration(
    cache_dir: str | Path, n_samples: int, seq_len: int, seed: int, split: str = "train"
) -> Calibration:
    """``n_samples`` distinct sequences of ``seq_len`` tokens of a token cache's ``split``, the
    :class:`~merino.token_cache.PackedDataset` items at indices drawn without replacement by
    ``numpy.random.default_rng(seed)`` (each item's last token, its shifted target, is dropped)."""
    data = PackedDataset(cache_dir, split, seq_len)
    if not 1 <= n_samples <= len(data):
        raise ValueError(
            f"n_samples={n_samples} calibration sequences requested, but the {split} split of "
            f"{cache_dir} has {len(data)} sequences of {seq_len} tokens: lower n_samples or seq_len"
        )
    indices = np.sort(np.random.default_rng(seed).choice(len(data), size=n_samples, replace=False))
    tokens = torch.stack([data[int(i)][:seq_len] for i in indices])
    description = {
        "cache_dir": str(cache_dir),
        "split": split,
        "n_samples": n_samples,
        "seq_len": seq_len,
        "seed": seed,
        "corpus_sha256": data.meta["corpus"]["sha256"],
        "tokenizer_sha256": data.meta["tokenizer"]["sha256"],
        "indices": indices.tolist(),
    }
    return Calibration(tokens, description)


def retokenize(calibration: Calibration, source, target, target_name: str) -> Calibration:
    """The same calibration text in another model's tokenizer (a paper baseline has its own): every sequence
    decoded with ``source``, the texts joined by ``target``'s end-of-text token and re-tokenized, then cut
    into sequences of the same length.  A tokenizer that needs fewer tokens for the text yields fewer
    sequences (never padding); the description records how many."""
    seq_len = calibration.tokens.shape[1]
    texts = source.batch_decode(calibration.tokens.tolist())
    separator = target.eos_token or ""
    ids = target(separator.join(texts), add_special_tokens=False)["input_ids"]
    n = min(len(calibration.tokens), len(ids) // seq_len)
    if n < 1:
        raise ValueError(
            f"calibration text is {len(ids)} tokens in {target_name}'s tokenizer, shorter than one "
            f"sequence of {seq_len}: raise quantization.calibration.samples"
        )
    tokens = torch.tensor(ids[: n * seq_len], dtype=torch.long).view(n, seq_len)
    description = {
        **calibration.description,
        "n_samples": n,
        "retokenized_for": target_name,
        "source_tokens": int(calibration.tokens.numel()),
        "target_tokens": len(ids),
    }
    return Calibration(tokens, description)


# ---- the model-level driver ------------------------------------------------------------------------------
def _weight_matrix(module: nn.Module) -> torch.Tensor:
    """The (out, in) matrix of a Linear, or of a Conv1D (which stores its transpose)."""
    return module.weight.t() if isinstance(module, Conv1D) else module.weight


def _set_weight(module: nn.Module, W: torch.Tensor) -> None:
    W = W.t() if isinstance(module, Conv1D) else W
    with torch.no_grad():
        module.weight.copy_(W.to(module.weight.dtype))


def conv1d_to_linear(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every transformers ``Conv1D`` replaced by the equivalent ``nn.Linear``
    (weight transposed): the same function, for tools that quantize ``nn.Linear`` only (llmcompressor)."""
    import copy

    model = copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        if isinstance(module, Conv1D):
            linear = nn.Linear(module.nx, module.nf)
            with torch.no_grad():
                linear.weight.copy_(module.weight.T)
                linear.bias.copy_(module.bias)
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, linear)
    return model


def quantizable_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Every ``nn.Linear`` and ``Conv1D`` of ``model`` by (first) name, except the output embedding and any
    module whose weight is an input embedding (a tied head).  A module held at several places (a
    shared layer) is listed once."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    embedding = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    tied = set() if embedding is None else {embedding.weight.data_ptr()}
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, (nn.Linear, Conv1D)) and m is not head and m.weight.data_ptr() not in tied
    }


class _StopForward(Exception):
    """Raised by a hook once the module being calibrated has seen its last input of a forward pass."""


def _forward(model: nn.Module, tokens: torch.Tensor, batch_size: int) -> None:
    """Run the calibration sequences through ``model`` in batches; a hook may cut a pass short."""
    device = next(model.parameters()).device
    for start in range(0, len(tokens), batch_size):
        with contextlib.suppress(_StopForward):
            model(input_ids=tokens[start : start + batch_size].to(device), use_cache=False)


def application_order(model: nn.Module, modules: dict[str, nn.Module], tokens: torch.Tensor) -> dict[str, int]:
    """Names of ``modules`` in the order one forward pass of ``tokens[:1]`` first applies them, with how
    often it applies each (L_i for a layer shared L_i times); modules it never applies are left out."""
    calls: dict[str, int] = {}
    hooks = [
        m.register_forward_pre_hook(lambda mod, args, name=name: calls.__setitem__(name, calls.get(name, 0) + 1))
        for name, m in modules.items()
    ]
    try:
        with torch.no_grad():
            _forward(model, tokens[:1], 1)
    finally:
        for h in hooks:
            h.remove()
    return calls


class HessianAccumulator:
    """Forward pre-hook state of one module: Σ x xᵀ over every input token (float64), the tokens and the
    calls counted.  A module applied several times per forward (a shared layer) adds every application.
    With ``stop_after`` it raises :class:`_StopForward` at that call of a pass (nothing later matters)."""

    def __init__(self, columns: int, device: torch.device, stop_after: int | None = None):
        self.sum = torch.zeros(columns, columns, dtype=torch.float64, device=device)
        self.tokens = self.calls = 0
        self.stop_after, self._in_pass = stop_after, 0

    def __call__(self, module: nn.Module, args: tuple) -> None:
        x = args[0].detach().reshape(-1, args[0].shape[-1]).to(torch.float64)
        self.sum += x.T @ x
        self.tokens += x.shape[0]
        self.calls += 1
        self._in_pass += 1
        if self.stop_after is not None and self._in_pass == self.stop_after:
            self._in_pass = 0
            raise _StopForward

    def hessian(self) -> torch.Tensor:
        """H = 2 X Xᵀ / tokens (the mean over tokens; GPTQ is invariant to H's scale)."""
        if self.tokens == 0:
            raise ValueError("no calibration input reached this module")
        return 2 * self.sum / self.tokens


@dataclass
class QuantizedModel:
    """The outcome of :func:`quantize_model`: the spec, the calibration description and every quantized
    module's :class:`QuantizedWeight` (in quantization order) with its layout (``linear`` | ``conv1d``)."""

    spec: QuantSpec
    weights: dict[str, QuantizedWeight]
    layouts: dict[str, str]
    calibration: dict | None = None
    unquantized: list[str] = field(default_factory=list)


def quantize_model(
    model: nn.Module,
    spec: QuantSpec,
    calibration: Calibration | torch.Tensor | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> QuantizedModel:
    """Quantize ``model`` in place (its weights become the dequantized ones) and return the codes.

    Modules (:func:`quantizable_modules`) go in the order the forward pass first applies them.  For
    GPTQ each gathers its Hessian from ``calibration`` (token ids (n, seq_len), run in batches of
    ``batch_size``) passing through the model whose earlier modules are already quantized; the pass
    stops after the module's last application.  A module applied k times per forward (MeRino's
    shared layer, k = L_i) accumulates all k inputs and is quantized once.  RTN needs no calibration.
    Modules the forward never reaches stay unquantized (listed in ``unquantized``)."""
    if isinstance(calibration, Calibration):
        tokens, description = calibration.tokens, calibration.description
    else:
        tokens, description = calibration, None
        if tokens is not None:
            description = {
                "n_samples": len(tokens),
                "seq_len": tokens.shape[1],
                "source": "token ids given by the caller",
            }
    candidates = quantizable_modules(model)
    was_training = model.training
    model.eval()
    if spec.method == "gptq":
        if tokens is None:
            raise ValueError("GPTQ needs calibration tokens (see draw_calibration)")
        order = application_order(model, candidates, tokens)
        names = list(order)
    else:
        names = list(candidates)
    result = QuantizedModel(spec, {}, {}, description, [n for n in candidates if n not in names])
    if progress:
        from tqdm import tqdm

        names = tqdm(list(names), desc=f"{spec.method} {spec.bits}-bit", unit="module")
    for name in names:
        module = candidates[name]
        W = _weight_matrix(module).detach()
        if spec.method == "rtn":
            q = rtn_quantize(W, spec)
        else:
            acc = HessianAccumulator(W.shape[1], W.device, stop_after=order[name])
            hook = module.register_forward_pre_hook(acc)
            try:
                with torch.no_grad():
                    _forward(model, tokens, batch_size)
            finally:
                hook.remove()
            q = gptq_quantize(W, acc.hessian(), spec)
            q.stats.update(applications_per_forward=order[name], calls=acc.calls, tokens=acc.tokens)
        _set_weight(module, q.dequantize())
        result.weights[name] = q
        result.layouts[name] = "conv1d" if isinstance(module, Conv1D) else "linear"
    model.train(was_training)
    return result


# ---- storage ----------------------------------------------------------------------------------------------
def _codes_per_byte(bits: int) -> int:
    """Codes stored per uint8: 8 // bits when bits divides 8 (8, 4 and 2 bits), else 1 (3, 5, 6, 7: unpacked)."""
    return 8 // bits if 8 % bits == 0 else 1


def pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """(rows, cols) codes < 2**bits -> (rows, ceil(cols / per)) uint8, ``per`` = :func:`_codes_per_byte`;
    code k of a byte sits in bits [k*bits, (k+1)*bits) (INT4: column 2c low nibble, 2c+1 high nibble)."""
    per = _codes_per_byte(bits)
    if per == 1:
        return codes.to(torch.uint8).contiguous()
    rows, cols = codes.shape
    fields = torch.nn.functional.pad(codes.to(torch.int32), (0, -cols % per)).reshape(rows, -1, per)
    return (fields << (torch.arange(per, dtype=torch.int32) * bits)).sum(-1).to(torch.uint8)


def unpack_codes(packed: torch.Tensor, bits: int, cols: int) -> torch.Tensor:
    """Inverse of :func:`pack_codes`: (rows, cols) uint8 codes."""
    per = _codes_per_byte(bits)
    if per == 1:
        return packed[:, :cols].to(torch.uint8)
    fields = (packed.to(torch.int32)[..., None] >> (torch.arange(per, dtype=torch.int32) * bits)) & (2**bits - 1)
    return fields.reshape(len(packed), -1)[:, :cols].to(torch.uint8)


def save_quantized(model: nn.Module, quantized: QuantizedModel, out_dir: str | Path) -> dict:
    """Write ``out_dir``: ``model.safetensors`` (per quantized module ``<name>.weight.codes`` uint8, packed
    for 4 and 2 bits, ``.scales`` float32 and ``.zeros`` uint8 (rows, groups); every other tensor of the
    state dict as it is), ``quantization.json`` (format, spec, calibration, modules with shape, layout
    and stats, sizes; also in the safetensors metadata) and the model's ``config.json``.
    Returns the sizes: bytes on disk, of the codes, of scales + zero points, of the full-precision rest,
    of the whole unquantized model at 32 bits, and bits per quantized weight including scales and zero points."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bits = quantized.spec.bits
    state = model.state_dict()
    quantized_keys = {f"{name}.weight" for name in quantized.weights}
    fp32_bytes = sum(4 * t.numel() for t in unalias(state).values())  # the whole model at 32 bits (Fig. 6)
    tensors = {k: v.cpu().contiguous() for k, v in unalias(state).items() if k not in quantized_keys}
    full_precision = sum(t.numel() * t.element_size() for t in tensors.values())
    modules, code_bytes, grid_bytes, n_weights = {}, 0, 0, 0
    for name, q in quantized.weights.items():
        tensors[f"{name}.weight.codes"] = pack_codes(q.codes, bits)
        tensors[f"{name}.weight.scales"], tensors[f"{name}.weight.zeros"] = q.scales, q.zeros
        code_bytes += tensors[f"{name}.weight.codes"].numel()
        grid_bytes += q.scales.numel() * 4 + q.zeros.numel()
        n_weights += q.codes.numel()
        modules[name] = {
            "shape": list(q.codes.shape),
            "layout": quantized.layouts[name],
            "group_size": q.group_size,
            "stats": q.stats,
        }
    config = {
        "format": FORMAT,
        "spec": asdict(quantized.spec),
        "calibration": quantized.calibration,
        "modules": modules,
        "unquantized_modules": quantized.unquantized,
        "inference": "load_quantized: dequantized float weights (scale * (code - zero)), or integer "
        "kernels (onnxruntime MatMulNBits) with kernels='integer'",
    }
    save_file(tensors, out / WEIGHTS_FILE, metadata={"quantization": json.dumps(config)})
    share_mode(out / WEIGHTS_FILE)
    model.config.save_pretrained(out)
    sizes = {
        "bytes_on_disk": (out / WEIGHTS_FILE).stat().st_size,
        "code_bytes": code_bytes,
        "scale_zero_bytes": grid_bytes,
        "full_precision_bytes": full_precision,
        "fp32_model_bytes": fp32_bytes,
        "quantized_weights": n_weights,
        "bits_per_quantized_weight": 8 * (code_bytes + grid_bytes) / max(n_weights, 1),
    }
    (out / CONFIG_FILE).write_text(json.dumps(config | {"sizes": sizes}, indent=2) + "\n")
    return sizes


def read_quantized(path: str | Path) -> tuple[QuantizedModel, dict[str, torch.Tensor]]:
    """The codes of a :func:`save_quantized` directory as a :class:`QuantizedModel`, and its
    full-precision tensors by state-dict name."""
    with safe_open(Path(path) / WEIGHTS_FILE, framework="pt") as f:
        config = json.loads((f.metadata() or {}).get("quantization", "null"))
        if not config or config.get("format") != FORMAT:
            raise ValueError(f"{Path(path) / WEIGHTS_FILE} is not a {FORMAT} checkpoint (write it with save_quantized)")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    spec = QuantSpec(**config["spec"])
    result = QuantizedModel(spec, {}, {}, config["calibration"], config["unquantized_modules"])
    for name, info in config["modules"].items():
        cols = info["shape"][1]
        codes = unpack_codes(tensors.pop(f"{name}.weight.codes"), spec.bits, cols)
        result.weights[name] = QuantizedWeight(
            codes,
            tensors.pop(f"{name}.weight.scales"),
            tensors.pop(f"{name}.weight.zeros"),
            spec.bits,
            info["group_size"],
            info["stats"],
        )
        result.layouts[name] = info["layout"]
    return result, tensors


KERNELS = ("dequantize", "integer")
DEQUANTIZED = "torch float32 matmul (dequantized weights)"


def check_kernels(kernels: str) -> None:
    """Raise unless ``kernels`` names one of :data:`KERNELS`."""
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {', '.join(KERNELS)}, got {kernels!r}")


def inference_kernels(quantized: QuantizedModel, kernels: str = "dequantize", compute: str = "int8") -> tuple[str, str]:
    """Which kernels :func:`load_quantized` runs for ``kernels``: ("dequantize" | "integer", a description
    for result files).  ``integer`` falls back to dequantized weights, saying why in the description, when
    a weight cannot run on the integer kernel (a bit width or group size MatMulNBits rejects)."""
    from .int_kernels import kernel_name, unsupported_reason

    check_kernels(kernels)
    if kernels == "dequantize":
        return kernels, DEQUANTIZED
    reasons = {unsupported_reason(q.bits, q.group_size, q.codes.shape[1]) for q in quantized.weights.values()} - {None}
    if reasons:
        return "dequantize", f"{DEQUANTIZED}: no integer kernel ({'; '.join(sorted(reasons))})"
    return kernels, kernel_name(quantized.spec.bits, compute)


def load_quantized(
    path: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    kernels: str = "dequantize",
    compute: str = "int8",
    row_block_size: int = 128,
    threads: int | None = None,
) -> nn.Module:
    """The model of a :func:`save_quantized` directory, rebuilt from its ``config.json`` (MeRino or any
    transformers causal LM) in eval mode on ``device``.  ``kernels="dequantize"``: the dequantized weights
    in the ordinary float forward; ``kernels="integer"``: every quantized matrix an
    :class:`~merino.int_kernels.IntegerLinear` (CPU only; ``compute``, ``row_block_size`` and ``threads``
    as there), raising when a weight cannot run on it (check with :func:`inference_kernels`)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from .model import register

    check_kernels(kernels)
    if kernels == "integer" and torch.device(device).type != "cpu":
        raise ValueError(
            f"integer kernels run on the CPU (onnxruntime MatMulNBits), not on device {device!r}: "
            f"load with kernels='dequantize' there"
        )
    register()
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    quantized, state = read_quantized(path)
    for name, q in quantized.weights.items():
        W = q.dequantize()
        state[f"{name}.weight"] = W.t() if quantized.layouts[name] == "conv1d" else W
    missing, unexpected = model.load_state_dict(state, strict=False)
    current = model.state_dict()
    loaded = {current[k].data_ptr() for k in state if k in current}
    untied = [k for k in missing if current[k].data_ptr() not in loaded]
    if unexpected or untied:
        raise ValueError(
            f"{path} does not fit the model of its config.json: missing {untied}, unexpected {sorted(unexpected)}"
        )
    model = model.to(device=device, dtype=dtype).eval()
    if kernels == "integer":
        from .int_kernels import integer_model

        integer_model(model, quantized, compute, row_block_size, threads)
    return model
