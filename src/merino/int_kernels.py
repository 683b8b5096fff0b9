"""Integer-kernel inference of GPTQ/RTN checkpoints (Fig. 6's measured latency and memory).

:func:`~merino.quantize.load_quantized` rebuilds a model with dequantized float weights; here every
quantized ``nn.Linear``/``Conv1D`` is replaced by an :class:`IntegerLinear` that keeps the saved codes,
scales and zero points as integers and runs ONNX Runtime's ``com.microsoft.MatMulNBits`` CPU kernel on
them.  That operator's grid is GPTQ's own: per block of ``block_size`` input columns of an output row,
W = scale * (code - zero), codes of 2, 4 or 8 bits packed low bits first (exactly
:func:`~merino.quantize.pack_codes`), ``block_size`` a power of two >= 16.

* A scheme with groups (``group_size`` g < columns) runs with ``block_size`` = g; a g that is not a power
  of two >= 16, or 3/5/6/7 bits, cannot run on this kernel (:func:`unsupported_reason` says why).
* One group per row (``group_size`` -1, the INT8 scheme) runs with ``row_block_size`` columns per block
  and the row's scale and zero point repeated over its blocks: the same weights, exactly.
* ``compute``: ``int8`` (MatMulNBits ``accuracy_level`` 4) quantizes each block of the activations to
  int8 on the fly and forms int8 x int8 dot products, the weights never leaving integers; ``float32``
  (``accuracy_level`` 0) unpacks the integer weights to float32 inside the kernel (the dequantized
  model's numerics, integer storage).

Only the quantized matrices change: embeddings, LayerNorms, biases and the LM head stay in torch, as in
the dequantized model.  A layer that MeRino applies L_i times (weight sharing) stays one module.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .quantize import QuantizedModel, QuantizedWeight, pack_codes

KERNEL = "onnxruntime com.microsoft.MatMulNBits"
KERNEL_BITS = (2, 4, 8)
COMPUTE = {"int8": 4, "float32": 0}  # compute -> MatMulNBits accuracy_level


def _power_of_two_block(size: int) -> bool:
    return size >= 16 and size & (size - 1) == 0


def unsupported_reason(bits: int, group_size: int, cols: int) -> str | None:
    """Why a weight of ``bits`` and ``group_size`` (columns per grid; >= ``cols``: one per row) cannot run
    on MatMulNBits, or None when it can."""
    if bits not in KERNEL_BITS:
        return f"MatMulNBits takes {', '.join(map(str, KERNEL_BITS))} bits, not {bits}"
    if group_size < cols and not _power_of_two_block(group_size):
        return f"MatMulNBits needs a block size that is a power of two >= 16, not group_size {group_size}"
    return None


def kernel_name(bits: int, compute: str) -> str:
    """What runs the quantized matrices, for result files and Fig. 6's ``kernels`` column."""
    return f"{KERNEL} {bits}-bit, {compute} compute"


def _compute_level(compute: str) -> int:
    if compute not in COMPUTE:
        raise ValueError(
            f"compute must be one of {', '.join(COMPUTE)} (config quantization.kernels.compute), got {compute!r}"
        )
    return COMPUTE[compute]


class IntegerLinear(nn.Module):
    """y = x Wᵀ + b with W = scale * (code - zero) kept as ``bits``-bit codes and run by MatMulNBits on CPU.

    Built from a :class:`~merino.quantize.QuantizedWeight` (rows = outputs, columns = inputs, whatever
    the layout of the module it replaces) and that module's bias; ``compute`` and ``row_block_size`` as
    in the module docstring, ``threads`` the kernel's intra-op threads."""

    def __init__(
        self,
        q: QuantizedWeight,
        bias: torch.Tensor | None = None,
        compute: str = "int8",
        row_block_size: int = 128,
        threads: int = 1,
    ):
        super().__init__()
        import onnxruntime as ort
        from onnx import TensorProto, helper

        rows, cols = q.codes.shape
        reason = unsupported_reason(q.bits, q.group_size, cols)
        if reason:
            raise ValueError(f"this weight cannot run on integer kernels: {reason}")
        if not _power_of_two_block(row_block_size):
            raise ValueError(
                f"row_block_size must be a power of two >= 16 (config quantization.kernels."
                f"row_block_size), got {row_block_size!r}"
            )
        level = _compute_level(compute)
        per_row = q.group_size >= cols
        block = row_block_size if per_row else q.group_size
        n_blocks = math.ceil(cols / block)
        scales = q.scales.float().expand(rows, n_blocks) if per_row else q.scales.float()
        zeros = q.zeros.expand(rows, n_blocks) if per_row else q.zeros
        codes = torch.nn.functional.pad(q.codes, (0, n_blocks * block - cols))  # (rows, n_blocks * block)
        packed = pack_codes(codes, q.bits).reshape(rows, n_blocks, block * q.bits // 8).numpy()
        zero_points = pack_codes(zeros, q.bits).numpy()  # (rows, ceil(n_blocks*bits/8))
        scale_values = np.ascontiguousarray(scales.numpy())
        node = helper.make_node(
            "MatMulNBits",
            ["A", "B", "scales", "zero_points"],
            ["Y"],
            domain="com.microsoft",
            K=cols,
            N=rows,
            bits=q.bits,
            block_size=block,
            accuracy_level=level,
        )
        graph = helper.make_graph(
            [node],
            "integer_linear",
            [helper.make_tensor_value_info("A", TensorProto.FLOAT, None)],
            [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
            initializer=[
                helper.make_tensor("B", TensorProto.UINT8, packed.shape, packed.tobytes(), raw=True),
                helper.make_tensor("scales", TensorProto.FLOAT, [scale_values.size], scale_values.tobytes(), raw=True),
                helper.make_tensor(
                    "zero_points", TensorProto.UINT8, [zero_points.size], zero_points.tobytes(), raw=True
                ),
            ],
        )
        onnx_model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # dozens of sessions share cores
        options.enable_cpu_mem_arena = False  # no per-session arena: dozens of sessions would each keep one
        options.log_severity_level = 3
        self.session = ort.InferenceSession(onnx_model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.in_features, self.out_features, self.bits, self.block_size = cols, rows, q.bits, block
        self.compute = compute
        self.kernel_bytes = packed.nbytes + scale_values.nbytes + zero_points.nbytes
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            raise ValueError(f"IntegerLinear runs ONNX Runtime's CPU kernel; got an input on {x.device}")
        a = x.detach().to(torch.float32).contiguous().numpy()
        y = torch.from_numpy(self.session.run(None, {"A": a})[0]).to(x.dtype)  # (..., out_features)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}, "
            f"block_size={self.block_size}, compute={self.compute}"
        )


def integer_model(
    model: nn.Module,
    quantized: QuantizedModel,
    compute: str = "int8",
    row_block_size: int = 128,
    threads: int | None = None,
) -> nn.Module:
    """``model`` (in place) with every module of ``quantized.weights`` replaced by an :class:`IntegerLinear`
    at every place it is held (a shared layer stays one shared module); ``threads`` per kernel defaults to
    torch's.  Raises when a weight cannot run on the kernel (:func:`unsupported_reason`)."""
    threads = threads or torch.get_num_threads()
    holders: dict[int, list[tuple[nn.Module, str]]] = {}
    for _, module in model.named_modules(remove_duplicate=False):
        for child_name, child in module.named_children():
            holders.setdefault(id(child), []).append((module, child_name))
    for name, q in quantized.weights.items():
        module = model.get_submodule(name)
        replacement = IntegerLinear(q, module.bias, compute, row_block_size, threads)
        for parent, child_name in holders[id(module)]:
            setattr(parent, child_name, replacement)
    return model.eval()


def resident_weight_bytes(model: nn.Module) -> int:
    """Bytes of the weights a forward pass reads: torch parameters and buffers (once each, shared or tied
    ones once) plus the codes, scales and zero points every :class:`IntegerLinear` hands its kernel."""
    tensors = {t.data_ptr(): t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()]}
    kernels = {id(m): m.kernel_bytes for m in model.modules() if isinstance(m, IntegerLinear)}
    return sum(tensors.values()) + sum(kernels.values())


def measure_quantized(
    checkpoints: dict[str, str | Path],
    kernels: str = "integer",
    compute: str = "int8",
    row_block_size: int = 128,
    threads: int = 1,
    protocol: dict | None = None,
) -> dict:
    """Fig. 6's measured columns for one model: each scheme's checkpoint (scheme -> directory of
    :func:`~merino.quantize.save_quantized`) loaded with ``kernels`` (``integer`` falls back to dequantized
    weights where the kernel rejects a scheme, and says so), beside the same model at fp32 (the first
    checkpoint dequantized: latency does not depend on the weights' values), timed interleaved in this
    process with :func:`~merino.latency.measure_models` under ``protocol`` (batch_size, seq_len, warmup,
    repeats, seed: the paper's batch 1, 128 tokens, mean of 16), on ``threads`` CPU threads.
    Returns per model: ``kernels`` (what ran), ``resident_weight_bytes``, ``file_bytes`` and the latency
    statistics and ratios to fp32."""
    from .latency import measure_models
    from .quantize import WEIGHTS_FILE, inference_kernels, load_quantized, read_quantized

    if not checkpoints:
        raise ValueError("measure_quantized needs at least one quantized checkpoint")
    models, rows = {}, {}
    first = next(iter(checkpoints.values()))
    models["fp32"] = load_quantized(first)
    rows["fp32"] = {"kernels": "torch float32 matmul", "file_bytes": None}
    for scheme, path in checkpoints.items():
        used, description = inference_kernels(read_quantized(path)[0], kernels, compute)
        models[scheme] = load_quantized(
            path, kernels=used, compute=compute, row_block_size=row_block_size, threads=threads
        )
        rows[scheme] = {"kernels": description, "file_bytes": (Path(path) / WEIGHTS_FILE).stat().st_size}
    for name, model in models.items():
        rows[name]["resident_weight_bytes"] = resident_weight_bytes(model)
    run = measure_models(models, "cpu", reference="fp32", threads=threads, **(protocol or {}))
    for name in models:
        rows[name].update(
            {k: v for k, v in run["models"][name].items() if k != "params"}, ratio_to_fp32=run["ratios"][name]
        )
    return {
        "protocol": run["protocol"],
        "settings": {"kernels": kernels, "compute": compute, "row_block_size": row_block_size},
        "models": rows,
    }
