"""Runtimes a latency device runs models with: torch eager, or ONNX Runtime (the edge runtime).

A latency device (config ``latency.devices.<name>.backend``) names its runtime, so that the paper's
latency protocol, the per-device latency tables behind ``latency<N>ms-<device>`` budgets and Table 3
are measured through the runtime the device really uses.  :func:`compile_call` turns a module and
its example inputs into a zero-argument callable running one forward pass:

* ``torch``: the module itself, called under ``torch.inference_mode`` by the timing loop;
* ``onnxruntime``: the module exported to ONNX (TorchScript exporter, opset 17, fixed shapes: the
  protocol's batch and sequence length) and run by an ``InferenceSession`` on the CPU execution
  provider with ``threads`` intra-op threads and every graph optimisation on.  A transformers model
  is exported with ``use_cache=False`` and returns its logits (as the torch protocol times it).

Exporting takes seconds per model (a minute for the largest baselines); it happens before any timed
call.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

BACKENDS = ("torch", "onnxruntime")
OPSET = 17


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(
            f"unknown latency backend {backend!r}; expected one of {BACKENDS} (config latency.devices.<device>.backend)"
        )
    return backend


def runtime_versions(backend: str) -> dict:
    """The versions a measurement through ``backend`` depends on, for result files."""
    versions = {"torch_version": torch.__version__}
    if backend == "onnxruntime":
        import onnxruntime

        versions["onnxruntime_version"] = onnxruntime.__version__
    return versions


def forward(model: nn.Module, inputs):
    """One forward pass on ``inputs`` (a tensor, a tuple of positional arguments or a dict of keywords).

    A transformers model keeps no KV cache: the cache serves decoding (:mod:`merino.generation`), and the
    forward of the paper's latency and memory protocol is a whole sequence at once."""
    kwargs = {"use_cache": False} if hasattr(model, "config") and hasattr(model.config, "use_cache") else {}
    if isinstance(inputs, Mapping):
        return model(**inputs, **kwargs)
    if isinstance(inputs, tuple):
        return model(*inputs, **kwargs)
    return model(inputs, **kwargs)


class _Exportable(nn.Module):
    """``model`` as a function of its tensor inputs alone, returning its first tensor (logits or hidden states).

    Arguments that are not tensors (None masks) are kept from ``inputs`` and re-inserted in place."""

    def __init__(self, model: nn.Module, inputs):
        super().__init__()
        self.model, self.inputs = model, inputs

    def tensors(self) -> tuple[torch.Tensor, ...]:
        values = (
            self.inputs.values()
            if isinstance(self.inputs, Mapping)
            else (self.inputs if isinstance(self.inputs, tuple) else (self.inputs,))
        )
        return tuple(v for v in values if isinstance(v, torch.Tensor))

    def forward(self, *tensors: torch.Tensor):
        given = iter(tensors)
        if isinstance(self.inputs, Mapping):
            inputs = {k: next(given) if isinstance(v, torch.Tensor) else v for k, v in self.inputs.items()}
        elif isinstance(self.inputs, tuple):
            inputs = tuple(next(given) if isinstance(v, torch.Tensor) else v for v in self.inputs)
        else:
            inputs = next(given)
        out = forward(self.model, inputs)
        if isinstance(out, torch.Tensor):
            return out
        if isinstance(out, tuple):
            return out[0]
        return out.logits if getattr(out, "logits", None) is not None else out[0]


def _diff(g, x, n, dim, prepend, append):
    """ONNX symbolic of first-order ``torch.diff`` (with optional prepend/append, as transformers' masks use it)."""
    from torch.onnx import symbolic_helper as sym

    if sym._maybe_get_const(n, "i") != 1:
        return sym._unimplemented("diff", "only first-order differences")
    d = sym._maybe_get_const(dim, "i")
    parts = [t for t in (prepend, x, append) if not sym._is_none(t)]
    x = g.op("Concat", *parts, axis_i=d) if len(parts) > 1 else x
    axis = g.op("Constant", value_t=torch.tensor([d]))
    one, big = g.op("Constant", value_t=torch.tensor([1])), g.op("Constant", value_t=torch.tensor([2**62]))
    zero, last = g.op("Constant", value_t=torch.tensor([0])), g.op("Constant", value_t=torch.tensor([-1]))
    return g.op("Sub", g.op("Slice", x, one, big, axis), g.op("Slice", x, zero, last, axis))


def _cumsum(g, x, dim, dtype):
    """ONNX symbolic of ``torch.cumsum`` that also takes booleans (ONNX's CumSum does not; torch sums them as int64)."""
    from torch.onnx import symbolic_helper as sym
    from torch.onnx._internal.torchscript_exporter import _type_utils

    if not sym._is_none(dtype):
        x = g.op("Cast", x, to_i=_type_utils.JitScalarType(sym._get_const(dtype, "i", "dtype")).onnx_type())
    elif _type_utils.JitScalarType.from_value(x, _type_utils.JitScalarType.UNDEFINED) == _type_utils.JitScalarType.BOOL:
        x = g.op("Cast", x, to_i=_type_utils.JitScalarType.INT64.onnx_type())
    return g.op("CumSum", x, g.op("Constant", value_t=torch.tensor(sym._get_const(dim, "i", "dim"))))


def export(model: nn.Module, inputs, path: str | Path) -> list[str]:
    """Write ``model`` applied to ``inputs`` as an ONNX graph at ``path``; returns the graph's input names.
    Two symbolics fill gaps of the TorchScript exporter that transformers' mask code hits: ``torch.diff``
    and ``cumsum`` of booleans."""
    torch.onnx.register_custom_op_symbolic("aten::diff", _diff, OPSET)
    torch.onnx.register_custom_op_symbolic("aten::cumsum", _cumsum, OPSET)
    wrapper = _Exportable(model.eval(), inputs).eval()
    names = [f"input{i}" for i in range(len(wrapper.tensors()))]
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            wrapper.tensors(),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=names,
            output_names=["output"],
        )
    return names


def onnx_session(path: str | Path, threads: int | None):
    """An ONNX Runtime CPU session of the graph at ``path`` with ``threads`` intra-op threads (None: its default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.inter_op_num_threads = 1
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def compile_call(model: nn.Module, inputs, backend: str = "torch", threads: int | None = None) -> Callable[[], object]:
    """A zero-argument callable running one forward pass of ``model`` on ``inputs`` through ``backend``."""
    if check_backend(backend) == "torch":
        return lambda: forward(model, inputs)
    if next(model.parameters(), torch.empty(0)).device.type != "cpu":
        raise ValueError(
            "the onnxruntime latency backend runs on the CPU execution provider: set the device's "
            "`device: cpu` (config latency.devices)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        names = export(model, inputs, path)
        session = onnx_session(path, threads)  # the session holds the graph: the file may go
    feeds = dict(zip(names, (t.numpy() for t in _Exportable(model, inputs).tensors())))
    return lambda: session.run(None, feeds)
