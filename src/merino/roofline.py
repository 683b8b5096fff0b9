"""Latency predicted from a datasheet: a per-operator roofline at the paper's protocol (batch 1).

For a device you do not own (the paper's NVIDIA Jetson Nano, Table 3), a :class:`Datasheet` gives its
peak FLOP/s per dtype, memory bandwidth and memory size.  :func:`operator_profile` runs a model once on
the CPU (random weights, ``torch.inference_mode``) under a dispatch mode and records every aten operator
that launches a kernel: its FLOPs (matrix products and attention) and the bytes it moves (every
input read once, every output written once; floating-point tensors at the device's dtype).  The
roofline (Williams, Waterman and Patterson, CACM 2009), summed over operators,

    time = sum_op max(flops_op / (peak * compute_eff), bytes_op / (bandwidth * bandwidth_eff)) + ops * overhead

predicts latency for any torch model alike (MeRino and the Hugging Face baselines): views, and
operators returning their input (dropout in eval mode), launch no kernel and cost nothing.  The efficiency factors
(fraction of peak reached; fixed cost of one kernel launch) default to 1 and 0, the datasheet's ideal:
:func:`fit_efficiency` fits them to measured latencies, and :func:`compare_with_measured` reports how
well the prediction ranks and matches the measurements, the fitted one by leave-one-out.

:func:`build_predicted_table` prices a search space by prediction instead of timing (the entries of
:func:`merino.latency.build_latency_table`), so ``latency<N>ms-<datasheet>`` budgets work through the
same :class:`merino.latency.LatencyTable`; its protocol records ``"predicted": true``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from .datasheet import EFFICIENCY_KEYS, Datasheet
from .latency import LatencyTable, _convention, _table_items, token_ids
from .runtime import forward
from .space import SearchSpace

# operators that read only the rows they return (an embedding reads 128 rows, not the whole vocabulary)
_GATHERS = {"embedding", "index_select", "index", "gather"}


# ---- the model's operators -------------------------------------------------------------------------------
def _tensors(x) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in _tensors(v)]
    if isinstance(x, Mapping):
        return [t for v in x.values() for t in _tensors(v)]
    return []


def _footprint(t: torch.Tensor) -> tuple[int, int]:
    """(floating-point elements, other bytes) of the memory a tensor spans (a broadcast one: its storage)."""
    span = 1 + sum((s - 1) * abs(st) for s, st in zip(t.shape, t.stride())) if t.numel() else 0
    n = min(t.numel(), span)
    return (n, 0) if t.is_floating_point() else (0, n * t.element_size())


def _flops(name: str, args, out: list[torch.Tensor]) -> float:
    """Multiply-adds x 2 of matrix products and attention; elementwise work counts as memory traffic only."""
    if name in ("mm", "bmm", "matmul", "linear"):
        return 2.0 * out[0].numel() * args[0].shape[-1]
    if name in ("addmm", "baddbmm"):
        return 2.0 * out[0].numel() * args[1].shape[-1]
    if name.startswith("_scaled_dot_product") or name == "scaled_dot_product_attention":
        q, k, v = args[:3]  # (..., S_q, D), (..., S_k, D), (..., S_k, D_v): Q K^T and softmax(.) V
        return 2.0 * q.shape[:-1].numel() * k.shape[-2] * (q.shape[-1] + v.shape[-1])
    return 0.0


@dataclass
class OperatorProfile:
    """The kernels of one forward pass: per operator its name, FLOPs, floating-point elements and other
    bytes moved; the bytes at a dtype are ``float_elements * itemsize + other_bytes``."""

    ops: list
    flops: np.ndarray
    float_elements: np.ndarray
    other_bytes: np.ndarray
    weight_elements: int = 0

    def bytes(self, itemsize: int) -> np.ndarray:
        """Bytes moved per operator with floating-point values of ``itemsize`` bytes."""
        return self.float_elements * itemsize + self.other_bytes

    def predict(self, sheet: Datasheet) -> dict:
        """The roofline of these kernels on ``sheet`` (ms), split into compute-bound, memory-bound and overhead."""
        eff = sheet.efficiency
        compute = self.flops / (sheet.peak * eff["compute"])
        memory = self.bytes(sheet.itemsize) / (sheet.bandwidth * eff["bandwidth"])
        bound = np.maximum(compute, memory)
        overhead = len(self.ops) * eff["overhead_us"] * 1e-6
        weight_bytes = self.weight_elements * sheet.itemsize
        return {
            "predicted_ms": float(bound.sum() + overhead) * 1e3,
            "compute_bound_ms": float(bound[compute >= memory].sum()) * 1e3,
            "memory_bound_ms": float(bound[compute < memory].sum()) * 1e3,
            "overhead_ms": overhead * 1e3,
            "kernels": len(self.ops),
            "gflops": float(self.flops.sum()) / 1e9,
            "bytes_moved": float(self.bytes(sheet.itemsize).sum()),
            "weight_bytes": weight_bytes,
            "fits_memory": bool(weight_bytes < sheet.memory_bytes),
        }


class _Recorder(TorchDispatchMode):
    """Records every aten operator that launches a kernel (see the module docstring)."""

    def __init__(self):
        super().__init__()
        self.rows = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs, outputs = _tensors((args, kwargs)), _tensors(out)
        writes = any(a.alias_info is not None and a.alias_info.is_write for a in func._schema.arguments)
        storages = {t.untyped_storage().data_ptr() for t in inputs}
        if not outputs or (not writes and all(t.untyped_storage().data_ptr() in storages for t in outputs)):
            return out  # a view, an alias or the input itself (eval-mode dropout), or a host scalar: no kernel
        name = func.overloadpacket.__name__
        if name in _GATHERS:  # the rows read are as many as the rows written, plus the indices
            inputs = [t for t in inputs if not t.is_floating_point()] + outputs
        moved = _moved(inputs) + _moved(outputs)  # every distinct input read once, every output written once
        self.rows.append((name, _flops(name, args, outputs), *moved.tolist()))
        return out


def _moved(tensors: list[torch.Tensor]) -> np.ndarray:
    """(floating-point elements, other bytes) of the distinct tensors among ``tensors``."""
    seen, moved = set(), np.zeros(2, dtype=np.int64)
    for t in tensors:
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()))
        if key not in seen:
            seen.add(key)
            moved += _footprint(t)
    return moved


def operator_profile(
    model: nn.Module, inputs=None, *, batch_size: int = 1, seq_len: int = 128, seed: int = 0
) -> OperatorProfile:
    """The kernels of one forward pass of ``model`` (eval mode, on the CPU, fp32): ``inputs`` as for
    :func:`merino.latency.measure_models` (None: ``batch_size`` x ``seq_len`` token ids; a tuple: positional)."""
    model = model.eval()
    if inputs is None:
        inputs = token_ids(model, batch_size, seq_len, torch.device("cpu"), seed)
    recorder = _Recorder()
    with torch.inference_mode(), recorder:
        forward(model, inputs)
    if not recorder.rows:
        raise ValueError(f"{type(model).__name__} launched no kernel to predict")
    names, flops, floats, other = zip(*recorder.rows)
    weights = sum(p.numel() for p in model.parameters())
    return OperatorProfile(
        list(names), np.array(flops), np.array(floats, dtype=np.float64), np.array(other, dtype=np.float64), weights
    )


def profile_models(
    models: Mapping[str, nn.Module | Callable[[], nn.Module]], *, batch_size: int = 1, seq_len: int = 128, seed: int = 0
) -> dict[str, OperatorProfile]:
    """:func:`operator_profile` of every model (a module, or a factory called after ``torch.manual_seed``)."""
    profiles = {}
    for name, model in models.items():
        torch.manual_seed(seed)
        profiles[name] = operator_profile(
            model if isinstance(model, nn.Module) else model(), batch_size=batch_size, seq_len=seq_len, seed=seed
        )
    return profiles


def predict_models(
    profiles: Mapping[str, OperatorProfile], sheet: Datasheet, *, batch_size: int = 1, seq_len: int = 128
) -> dict:
    """Predicted latency of every profiled model on ``sheet``; labelled ``"predicted": true`` throughout."""
    return {
        "device_label": sheet.name,
        "predicted": True,
        "protocol": {
            "method": "roofline",
            "predicted": True,
            "batch_size": batch_size,
            "seq_len": seq_len,
            "dtype": sheet.dtype,
            "datasheet": sheet.to_dict(),
            "torch_version": torch.__version__,
        },
        "models": {name: p.predict(sheet) for name, p in profiles.items()},
    }


# ---- efficiency factors fitted to measurements ----------------------------------------------------------------
def fit_efficiency(
    profiles: Mapping[str, OperatorProfile], measured_ms: Mapping[str, float], sheet: Datasheet
) -> Datasheet:
    """``sheet`` with the efficiency factors (compute and bandwidth in (0, 1], overhead >= 0 µs) that fit
    ``measured_ms`` best by least squares in log space (relative errors weigh alike for small and large models)."""
    from scipy.optimize import least_squares

    names = sorted(measured_ms)
    if len(names) < len(EFFICIENCY_KEYS):
        raise ValueError(
            f"fitting {len(EFFICIENCY_KEYS)} efficiency factors needs at least {len(EFFICIENCY_KEYS)} "
            f"measured models, got {names}"
        )
    missing = [n for n in names if n not in profiles]
    if missing:
        raise ValueError(f"no operator profile for measured models {missing}")
    log_measured = np.log([measured_ms[n] for n in names])

    def residuals(x):
        fitted = sheet.with_efficiency(compute=x[0], bandwidth=x[1], overhead_us=x[2])
        return np.log([profiles[n].predict(fitted)["predicted_ms"] for n in names]) - log_measured

    starts = [(c, b, o) for c in (1.0, 0.3) for b in (1.0, 0.3) for o in (0.0, 100.0)]  # the best of a few local fits
    fits = [
        least_squares(residuals, x0, bounds=([1e-3, 1e-3, 0.0], [1.0, 1.0, 1e4]), x_scale=[0.1, 0.1, 10.0])
        for x0 in starts
    ]
    best = min(fits, key=lambda f: f.cost)
    return sheet.with_efficiency(**dict(zip(EFFICIENCY_KEYS, (float(v) for v in best.x))))


def agreement(predicted_ms: Mapping[str, float], measured_ms: Mapping[str, float]) -> dict:
    """Spearman's rho, mean absolute % error and mean signed % error (bias) of predictions against measurements."""
    from scipy import stats

    names = sorted(measured_ms)
    p = np.array([predicted_ms[n] for n in names])
    m = np.array([measured_ms[n] for n in names])
    rel = (p - m) / m
    return {
        "models": len(names),
        "spearman": float(stats.spearmanr(p, m).statistic),
        "mean_abs_pct_error": float(np.abs(rel).mean() * 100),
        "mean_pct_error": float(rel.mean() * 100),
    }


def compare_with_measured(
    profiles: Mapping[str, OperatorProfile], measured_ms: Mapping[str, float], sheet: Datasheet
) -> dict:
    """Predicted against measured latency (e.g. the paper's Jetson Nano column): with ``sheet`` as given;
    with efficiency factors fitted to all measurements (in-sample); and leave-one-out (each model
    predicted by factors fitted to the others' measurements only, the honest error of the fitted predictor)."""
    names = sorted(measured_ms)
    given = {n: profiles[n].predict(sheet)["predicted_ms"] for n in names}
    fitted_sheet = fit_efficiency(profiles, measured_ms, sheet)
    fitted = {n: profiles[n].predict(fitted_sheet)["predicted_ms"] for n in names}
    loo, loo_factors = {}, {}
    for n in names:
        others = {m: measured_ms[m] for m in names if m != n}
        held_out = fit_efficiency(profiles, others, sheet)
        loo[n], loo_factors[n] = profiles[n].predict(held_out)["predicted_ms"], held_out.efficiency
    return {
        "datasheet": agreement(given, measured_ms),
        "fitted": agreement(fitted, measured_ms),
        "leave_one_out": agreement(loo, measured_ms),
        "datasheet_efficiency": sheet.efficiency,
        "fitted_efficiency": fitted_sheet.efficiency,
        "rows": [
            {
                "model": n,
                "measured_ms": float(measured_ms[n]),
                "predicted_ms": given[n],
                "predicted_fitted_ms": fitted[n],
                "predicted_loo_ms": loo[n],
                "loo_efficiency": loo_factors[n],
            }
            for n in names
        ],
    }


# ---- a latency table priced by the datasheet -------------------------------------------------------------------
def build_predicted_table(
    space: SearchSpace, convention: Mapping, sheet: Datasheet, *, batch_size: int = 1, seq_len: int = 128, seed: int = 0
) -> LatencyTable:
    """The latency table of ``space`` on ``sheet``'s device, every entry (layer (E, F), projection, constant
    part) predicted by the roofline instead of timed; prices ``latency<N>ms-<sheet.name>`` budgets."""
    conv = _convention(convention)
    if space.head_dim != conv["head_dim"]:
        raise ValueError(f"search space head_dim {space.head_dim} differs from the convention's {conv['head_dim']}")
    started = time.perf_counter()
    items, widths = _table_items(space, conv, batch_size, seq_len)
    value = {}
    for key, build, make_input in items:
        torch.manual_seed(seed)
        value[key] = operator_profile(build(), make_input(), seed=seed).predict(sheet)["predicted_ms"]
    e_values, f_values, widths = space.e_grid.copy(), space.f_grid.copy(), np.asarray(widths, dtype=np.int64)
    layer_ms = np.array([[value.get(("layer", int(e), int(f)), np.nan) for f in f_values] for e in e_values])
    projection_ms = np.array(
        [[0.0 if a == b else value[("projection", int(a), int(b))] for b in widths] for a in widths]
    )
    protocol = {
        "method": "roofline",
        "predicted": True,
        "device_name": f"{sheet.name} (datasheet)",
        "datasheet": sheet.to_dict(),
        "batch_size": batch_size,
        "seq_len": seq_len,
        "dtype": sheet.dtype,
        "threads": None,
        "statistic": "predicted",
        "seed": seed,
        "torch_version": torch.__version__,
        "entries": len(items),
        "wall_s": round(time.perf_counter() - started, 3),
    }
    return LatencyTable(
        sheet.name, conv, e_values, f_values, layer_ms, widths, projection_ms, value[("constant",)], protocol
    )
