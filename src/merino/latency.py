"""On-device latency: the paper's protocol, and per-device latency lookup tables for the search.

Protocol (paper Table 3): batch 1, sequence length 128, the mean of 16 measurements of one forward
pass (the paper ran it on an NVIDIA Jetson Nano).  :func:`measure_latency` times one model under
``torch.inference_mode`` after warm-up calls, synchronising CUDA around every timed call, and
records every sample with the thread count, device name, dtype and torch version.
:func:`measure_models` measures several models in ONE process, interleaved round-robin (one call
of each per round, the starting model rotating), so a load that comes and goes on a shared
machine hits every model alike and their ratios stay comparable; it reports the ratio of every
model to a reference by mean, by median and as the median of per-round ratios.  Latency does not
depend on the weights, so baselines can be measured with random weights built from their config.

Latency table (beyond the paper: "design for a device"): measured once on the device, the
latency of ONE layer (E, F) for every shape of a search space, of every width projection
E_in -> E_out, and of the constant part (embeddings, final LayerNorm, LM head), all at the
protocol's batch and sequence length.  The predictor

    latency(arch) = constant + sum_i L_i layer(E_i, F_i) + sum of projections D -> E_1 -> ... -> E_N -> D

is additive like FLOPs, so :class:`LatencyTable` is a *pricing* (:mod:`merino.cost`): the
evolutionary search and the exact solver take ``latency<N>ms-<device>`` budgets with it.
:func:`check_predictor` validates it against whole models measured on the same device.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import platform
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .cost import CostModel, additive_total
from .runtime import check_backend, compile_call, runtime_versions
from .space import Architecture, SearchSpace

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
CONVENTION_KEYS = ("vocab_size", "embed_proj_dim", "max_positions", "head_dim", "weight_sharing", "norm")
CONVENTION_DEFAULTS = {"norm": "pre"}  # keys a convention from an older results file may lack, and their value


# ---- the protocol ----------------------------------------------------------------------------------------
def device_name(device: str | torch.device = "cpu") -> str:
    """The hardware behind ``device``: the GPU's name, or the CPU model (``/proc/cpuinfo``, else platform)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() in ("model name", "hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or device.type


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected a torch.dtype or one of {sorted(_DTYPES)}")
    return _DTYPES[dtype]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@contextmanager
def intra_op_threads(threads: int | None):
    """Run with ``threads`` intra-op threads (None: as set), restoring the previous count after."""
    before = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def load_average() -> float | None:
    """The 1-minute load average (how busy a shared machine was), where the OS tells it."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def token_ids(model, batch_size: int, seq_len: int, device: torch.device, seed: int) -> torch.Tensor:
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab is None:
        raise ValueError(f"{type(model).__name__} has no config.vocab_size to draw token ids from; pass inputs=")
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch_size, seq_len), generator=g).to(device)


def summarize(samples_ms) -> dict:
    """Mean, median, std (n-1), min and max of timings in ms, and the samples themselves."""
    x = np.asarray(samples_ms, dtype=np.float64)
    return {
        "mean_ms": float(x.mean()),
        "median_ms": float(np.median(x)),
        "std_ms": float(x.std(ddof=1)) if len(x) > 1 else 0.0,
        "min_ms": float(x.min()),
        "max_ms": float(x.max()),
        "samples_ms": [float(v) for v in x],
    }


def on_device(x, device: torch.device, dtype: torch.dtype):
    """Inputs (tensor, tuple, dict, None) on ``device``, floating-point tensors in ``dtype``."""
    if isinstance(x, torch.Tensor):
        return x.to(device, dtype if x.is_floating_point() else x.dtype)
    if isinstance(x, tuple):
        return tuple(on_device(t, device, dtype) for t in x)
    if isinstance(x, Mapping):
        return {k: on_device(v, device, dtype) for k, v in x.items()}
    return x


def instantiate(model: nn.Module | Callable[[], nn.Module], device: torch.device, dtype: torch.dtype) -> nn.Module:
    """``model`` (a module, or a factory returning one) in eval mode on ``device`` in ``dtype``."""
    model = model if isinstance(model, nn.Module) else model()
    return model.eval().to(device=device, dtype=dtype)


def measure_models(
    models: Mapping[str, nn.Module | Callable[[], nn.Module]],
    device: str | torch.device = "cpu",
    *,
    reference: str | None = None,
    batch_size: int = 1,
    seq_len: int = 128,
    warmup: int = 3,
    repeats: int = 16,
    threads: int | None = None,
    dtype: str | torch.dtype = torch.float32,
    inputs=None,
    seed: int = 0,
    backend: str = "torch",
) -> dict:
    """Latency of several models measured in one process, interleaved over ``repeats`` rounds.

    ``models``: name -> a module, or a factory returning one (called after ``torch.manual_seed(seed)``;
    random weights suffice).  Each model is moved to ``device`` and ``dtype`` (in place) and called on
    ``inputs``: None draws ``batch_size`` x ``seq_len`` token ids below its ``config.vocab_size``; a
    callable gets the model and returns them; a tensor, tuple (positional) or dict (keywords) is used
    as is (floating-point tensors cast to ``dtype``).  Every model gets ``warmup`` untimed calls, then
    each round times one call of every model, the starting model rotating round by round.  ``ratios``
    (with ``reference``) divide every model's mean and median by the reference's, and take the median
    of the per-round ratios (the steadiest on a shared machine: both calls of a pair saw the same load).
    ``backend``: the runtime that runs the forward passes (:mod:`merino.runtime`: torch or onnxruntime)."""
    check_backend(backend)
    if not models:
        raise ValueError("measure_models needs at least one model")
    if reference is not None and reference not in models:
        raise ValueError(f"reference model {reference!r} is not among the models measured: {sorted(models)}")
    if repeats < 1 or warmup < 0 or batch_size < 1 or seq_len < 1:
        raise ValueError(
            f"need repeats >= 1, warmup >= 0, batch_size >= 1 and seq_len >= 1; got repeats={repeats!r}, "
            f"warmup={warmup!r}, batch_size={batch_size!r}, seq_len={seq_len!r}"
        )
    dev, dt = torch.device(device), resolve_dtype(dtype)
    names = list(models)
    load_before = load_average()
    with intra_op_threads(threads) as n_threads:
        torch.manual_seed(seed)
        runs = {}
        for name in names:
            model = instantiate(models[name], dev, dt)
            if inputs is None:
                x = token_ids(model, batch_size, seq_len, dev, seed)
            else:
                x = on_device(inputs(model) if callable(inputs) else inputs, dev, dt)
            runs[name] = (model, compile_call(model, x, backend, n_threads))
        samples = {name: [] for name in names}
        with torch.inference_mode():
            for _ in range(warmup):
                for name in names:
                    runs[name][1]()
            synchronize(dev)
            for r in range(repeats):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    call = runs[name][1]
                    synchronize(dev)
                    start = time.perf_counter()
                    call()
                    synchronize(dev)
                    samples[name].append((time.perf_counter() - start) * 1e3)
    result = {
        "protocol": {
            "batch_size": batch_size,
            "seq_len": seq_len,
            "warmup": warmup,
            "repeats": repeats,
            "threads": n_threads,
            "device": str(dev),
            "device_name": device_name(dev),
            "dtype": dtype_name(dt),
            "backend": backend,
            **runtime_versions(backend),
            "inference_mode": True,
            "schedule": "round-robin: each round times one call of every model, the first model rotating",
            "load_average": [load_before, load_average()],
        },
        "models": {
            name: {**summarize(samples[name]), "params": sum(p.numel() for p in runs[name][0].parameters())}
            for name in names
        },
    }
    if reference is not None:
        ref = np.asarray(samples[reference])
        stats = result["models"]
        result["reference"] = reference
        result["ratios"] = {
            name: {
                "mean": stats[name]["mean_ms"] / stats[reference]["mean_ms"],
                "median": stats[name]["median_ms"] / stats[reference]["median_ms"],
                "paired_median": float(np.median(np.asarray(samples[name]) / ref)),
            }
            for name in names
        }
    return result


def measure_latency(
    model: nn.Module | Callable[[], nn.Module],
    device: str | torch.device = "cpu",
    batch_size: int = 1,
    seq_len: int = 128,
    warmup: int = 3,
    repeats: int = 16,
    threads: int | None = None,
    dtype: str | torch.dtype = torch.float32,
    inputs=None,
    seed: int = 0,
    backend: str = "torch",
) -> dict:
    """The paper's protocol for one model (defaults: batch 1, 128 tokens, 16 timed calls; the paper
    reports the mean).  Returns mean/median/std/min/max (ms), the samples, the thread count, device
    and its name, dtype, torch version and the parameter count.  See :func:`measure_models`."""
    run = measure_models(
        {"model": model},
        device,
        batch_size=batch_size,
        seq_len=seq_len,
        warmup=warmup,
        repeats=repeats,
        threads=threads,
        dtype=dtype,
        inputs=inputs,
        seed=seed,
        backend=backend,
    )
    return {**run["models"]["model"], **run["protocol"]}


# ---- per-device latency lookup table ---------------------------------------------------------------------------
def _convention(convention: Mapping) -> dict:
    convention = {**CONVENTION_DEFAULTS, **convention}
    missing = [k for k in CONVENTION_KEYS if k not in convention]
    if missing:
        raise ValueError(
            f"model convention lacks {missing}; give the config `model` section ({', '.join(CONVENTION_KEYS)})"
        )
    return {k: convention[k] for k in CONVENTION_KEYS}


def merino_model(arch: Architecture, convention: Mapping):
    """A randomly initialised MeRino model of ``arch`` under a model convention (config ``model`` section)."""
    from .model import MerinoConfig, MerinoForCausalLM

    c = _convention(convention)
    return MerinoForCausalLM(
        MerinoConfig.from_architecture(
            arch,
            vocab_size=c["vocab_size"],
            embed_proj_dim=c["embed_proj_dim"],
            max_position_embeddings=c["max_positions"],
            head_dim=c["head_dim"],
            weight_sharing=c["weight_sharing"],
            norm=c["norm"],
        )
    )


def model_factory(entry: Mapping) -> Callable[[], nn.Module]:
    """The random-weight model a latency job times: ``{"baseline": name}`` (a paper baseline's config) or
    ``{"architecture": path, "model": convention}`` (a MeRino architecture file)."""
    from .baselines import baseline_model

    if "baseline" in entry:
        return functools.partial(baseline_model, entry["baseline"], "cpu")
    return functools.partial(merino_model, Architecture.load(entry["architecture"]), entry["model"])


def _index(values: np.ndarray, query, what: str) -> np.ndarray:
    """Positions of ``query`` values in the sorted ``values``; raises naming values the table lacks."""
    query = np.asarray(query, dtype=np.int64)
    idx = np.clip(np.searchsorted(values, query), 0, len(values) - 1)
    bad = values[idx] != query
    if bad.any():
        raise ValueError(
            f"latency table has no {what} {sorted(set(query[bad].tolist()))}; it was measured for "
            f"{values.tolist()}: rebuild it for this search space"
        )
    return idx


@dataclass
class LatencyTable:
    """Per-device latency of one layer per (E, F), one projection per (E_in, E_out) and the constant part.

    A pricing (see :mod:`merino.cost`): ``batch(e, f, l)`` predicts whole populations; ``device`` is
    the name latency budgets use (``latency50ms-<device>``); ``protocol`` records how it was measured."""

    device: str
    convention: dict
    e_values: np.ndarray  # (nE,)
    f_values: np.ndarray  # (nF,)
    layer_ms: np.ndarray  # (nE, nF): one layer of width E and FFN width F; NaN for a pair not measured
    widths: np.ndarray  # (nW,): every block width and D
    projection_ms: np.ndarray  # (nW, nW): Linear(widths[i], widths[j]); 0 on the diagonal (no projection)
    constant_ms: float  # embeddings, final LayerNorm, LM head and the model's own overhead
    protocol: dict

    kind = "latency"
    additive = True

    # ---- pricing interface -------------------------------------------------------------------------
    @property
    def embed_proj_dim(self) -> int:
        return int(self.convention["embed_proj_dim"])

    def block_term(self, e, f, l):
        return (
            np.asarray(l)
            * self.layer_ms[_index(self.e_values, e, "layer width E"), _index(self.f_values, f, "FFN width F")]
        )

    def transition_term(self, e_in, e_out):
        return self.projection_ms[
            _index(self.widths, e_in, "projection width"), _index(self.widths, e_out, "projection width")
        ]

    def constant_term(self) -> float:
        return self.constant_ms

    def batch(self, e, f, l) -> np.ndarray:
        """Predicted latency (ms) of every architecture in arrays (P, N) of E, F, L."""
        return additive_total(self, e, f, l)

    def predict(self, arch: Architecture) -> float:
        return float(self.batch(*arch.arrays())[0])

    def breakdown(self, arch: Architecture) -> dict:
        """The prediction's terms: constant, each block (L_i layers) and each projection (ms)."""
        e, f, l = arch.arrays()
        d = self.embed_proj_dim
        widths = [d, *arch.widths, d]
        return {
            "constant_ms": self.constant_ms,
            "blocks_ms": self.block_term(e, f, l)[0].tolist(),
            "projections_ms": [float(self.transition_term(a, b)) for a, b in itertools.pairwise(widths)],
            "total_ms": self.predict(arch),
        }

    def check_space(self, space: SearchSpace) -> None:
        """Raise unless every shape of ``space`` was measured under the same head width."""
        if space.head_dim != self.convention["head_dim"]:
            raise ValueError(
                f"latency table of {self.device!r} was measured with head_dim "
                f"{self.convention['head_dim']}, the search space has {space.head_dim}"
            )
        shapes = space.layer_shapes()
        e, f = np.asarray(shapes).T
        measured = self.layer_ms[_index(self.e_values, e, "layer width E"), _index(self.f_values, f, "FFN width F")]
        if np.isnan(measured).any():
            raise ValueError(
                f"latency table of {self.device!r} has no layer (E, F) = "
                f"{shapes[int(np.flatnonzero(np.isnan(measured))[0])]}; rebuild it for this search space"
            )

    def check_convention(self, cost: CostModel) -> None:
        """Raise unless the table was measured under ``cost``'s model convention."""
        diff = {
            k: (self.convention[k], getattr(cost, k))
            for k in ("embed_proj_dim", "vocab_size", "head_dim")
            if self.convention[k] != getattr(cost, k)
        }
        if diff:
            raise ValueError(
                f"latency table of {self.device!r} was measured under another model convention than the "
                f"cost model's, (table, cost model): {diff}; build it with the same `model` settings"
            )

    def describe(self) -> dict:
        """What a prediction depends on, for result files."""
        keys = ("device_name", "backend", "threads", "batch_size", "seq_len", "dtype", "statistic", "torch_version")
        return {
            "device": self.device,
            **{k: self.protocol.get(k) for k in keys},
            "method": self.protocol.get("method", "measured"),
            "predicted": self.protocol.get("predicted", False),
        }

    # ---- files ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "device": self.device,
            "convention": self.convention,
            "protocol": self.protocol,
            "constant_ms": self.constant_ms,
            "layers": [
                [int(e), int(f), float(self.layer_ms[i, j])]
                for i, e in enumerate(self.e_values)
                for j, f in enumerate(self.f_values)
                if not np.isnan(self.layer_ms[i, j])
            ],
            "projections": [
                [int(a), int(b), float(self.projection_ms[i, j])]
                for i, a in enumerate(self.widths)
                for j, b in enumerate(self.widths)
                if a != b
            ],
        }

    @classmethod
    def from_dict(cls, data: dict) -> LatencyTable:
        layers = np.asarray(data["layers"], dtype=np.float64).reshape(-1, 3)
        e_values, f_values = np.unique(layers[:, 0]).astype(np.int64), np.unique(layers[:, 1]).astype(np.int64)
        layer_ms = np.full((len(e_values), len(f_values)), np.nan)
        layer_ms[_index(e_values, layers[:, 0], "E"), _index(f_values, layers[:, 1], "F")] = layers[:, 2]
        proj = np.asarray(data["projections"], dtype=np.float64).reshape(-1, 3)
        widths = np.unique(np.concatenate([proj[:, :2].ravel(), e_values, [data["convention"]["embed_proj_dim"]]]))
        widths = widths.astype(np.int64)
        projection_ms = np.full((len(widths), len(widths)), np.nan)
        np.fill_diagonal(projection_ms, 0.0)
        projection_ms[_index(widths, proj[:, 0], "width"), _index(widths, proj[:, 1], "width")] = proj[:, 2]
        if np.isnan(projection_ms).any():
            raise ValueError(
                f"latency table of {data['device']!r} is incomplete: every projection between its widths needs an entry"
            )
        return cls(
            data["device"],
            dict(data["convention"]),
            e_values,
            f_values,
            layer_ms,
            widths,
            projection_ms,
            float(data["constant_ms"]),
            dict(data["protocol"]),
        )

    def save(self, path: str | Path, provenance: dict | None = None) -> None:
        from .provenance import write_json

        write_json(path, {**self.to_dict(), "provenance": provenance or {}})

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        try:
            data = json.loads(Path(path).read_text())
            return cls.from_dict(data)
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"cannot read latency table {str(path)!r}: {err!r}") from err


def _table_items(space: SearchSpace, convention: dict, batch_size: int, seq_len: int):
    """(key, factory, input factory) for every entry of a table: layers, projections, the constant part."""
    from .model import MerinoConfig, MerinoForCausalLM, MerinoLayer, WidthProjection

    hd, d = convention["head_dim"], convention["embed_proj_dim"]
    config = MerinoConfig(
        vocab_size=convention["vocab_size"],
        embed_proj_dim=d,
        max_position_embeddings=convention["max_positions"],
        head_dim=hd,
        norm=convention["norm"],
        block_embed_dims=[hd],
        block_ffn_dims=[hd],
        block_depths=[1],
    )

    def hidden(width):
        return lambda: (torch.randn(batch_size, seq_len, width),)

    def constant():
        """The whole model's code path with no blocks: embeddings, final LayerNorm, LM head."""
        model = MerinoForCausalLM(config)
        model.model.blocks = nn.ModuleList()
        model.model.proj_out = nn.Identity()
        return model

    items = [
        (
            ("layer", int(e), int(f)),
            lambda e=int(e), f=int(f): MerinoLayer(config, e, f),
            lambda e=int(e): (torch.randn(batch_size, seq_len, e), None),
        )  # mask None: causal
        for e, f in space.layer_shapes()
    ]
    widths = sorted({int(e) for e in space.e_grid} | {d})
    items += [
        (("projection", a, b), lambda a=a, b=b: WidthProjection(a, b), hidden(a))
        for a in widths
        for b in widths
        if a != b
    ]
    items.append(
        (("constant",), constant, lambda: (torch.randint(0, convention["vocab_size"], (batch_size, seq_len)),))
    )
    return items, widths


def build_latency_table(
    space: SearchSpace,
    convention: Mapping,
    *,
    device_label: str = "cpu",
    device: str | torch.device = "cpu",
    batch_size: int = 1,
    seq_len: int = 128,
    warmup: int = 2,
    repeats: int = 10,
    passes: int = 5,
    threads: int | None = None,
    dtype: str | torch.dtype = torch.float32,
    statistic: str = "mean",
    seed: int = 0,
    backend: str = "torch",
    progress: bool = False,
) -> LatencyTable:
    """Measure the latency table of ``space`` on ``device`` (see the module docstring).

    ``convention``: the config ``model`` section (vocab_size, embed_proj_dim, max_positions,
    head_dim, weight_sharing, norm).  Every entry is measured in ``passes`` passes over all entries in a
    fresh seeded random order (a slow spell of a shared machine spreads over all of them); each
    pass builds the module, makes ``warmup`` untimed and ``repeats`` timed calls and frees it.  An
    entry is the ``statistic`` of its passes x repeats samples: the mean (default; means add up, so
    the predicted sum is the mean of the whole model) or the median (robust, but on a busy machine
    the median of a sub-millisecond call misses the preemptions a whole forward pass always
    suffers, and the predictor comes out ~30 % low there).  ``device_label``
    is the name budgets use (``latency50ms-<device_label>``); ``backend`` the runtime every entry runs
    through (:mod:`merino.runtime`)."""
    check_backend(backend)
    if statistic not in ("median", "mean"):
        raise ValueError(f"statistic must be 'median' or 'mean', got {statistic!r}")
    if min(repeats, passes) < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1, passes >= 1 and warmup >= 0; got {repeats!r}, {passes!r}, {warmup!r}")
    conv = _convention(convention)
    if space.head_dim != conv["head_dim"]:
        raise ValueError(f"search space head_dim {space.head_dim} differs from the convention's {conv['head_dim']}")
    if seq_len > conv["max_positions"]:
        raise ValueError(f"seq_len {seq_len} exceeds the convention's max_positions {conv['max_positions']}")
    dev, dt = torch.device(device), resolve_dtype(dtype)
    items, widths = _table_items(space, conv, batch_size, seq_len)
    samples = {key: [] for key, _, _ in items}
    rng = np.random.default_rng(seed)
    started, load_before = time.perf_counter(), load_average()
    with intra_op_threads(threads) as n_threads:
        from tqdm import tqdm

        for p in tqdm(range(passes), desc=f"latency table ({len(items)} entries)", unit="pass", disable=not progress):
            for i in rng.permutation(len(items)):
                key, build, make_input = items[i]
                torch.manual_seed(seed + p)
                module = build().eval().to(device=dev, dtype=dt)
                call = compile_call(module, on_device(make_input(), dev, dt), backend, n_threads)
                with torch.inference_mode():
                    for _ in range(warmup):
                        call()
                    for _ in range(repeats):
                        synchronize(dev)
                        start = time.perf_counter()
                        call()
                        synchronize(dev)
                        samples[key].append((time.perf_counter() - start) * 1e3)
                del module, call
    stat = np.median if statistic == "median" else np.mean
    value = {key: float(stat(v)) for key, v in samples.items()}
    e_values, f_values = space.e_grid.copy(), space.f_grid.copy()
    widths = np.asarray(widths, dtype=np.int64)
    layer_ms = np.array([[value.get(("layer", int(e), int(f)), np.nan) for f in f_values] for e in e_values])
    projection_ms = np.array(
        [[0.0 if a == b else value[("projection", int(a), int(b))] for b in widths] for a in widths]
    )
    spread = [float(np.subtract(*np.percentile(v, [75, 25])) / np.median(v)) for v in samples.values()]
    protocol = {
        "device_name": device_name(dev),
        "torch_device": str(dev),
        "threads": n_threads,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "dtype": dtype_name(dt),
        "statistic": statistic,
        "warmup": warmup,
        "repeats": repeats,
        "passes": passes,
        "seed": seed,
        "backend": backend,
        **runtime_versions(backend),
        "entries": len(items),
        "wall_s": round(time.perf_counter() - started, 3),
        "load_average": [load_before, load_average()],
        "median_relative_iqr": float(np.median(spread)),  # how noisy the entries were
    }
    return LatencyTable(
        device_label, conv, e_values, f_values, layer_ms, widths, projection_ms, value[("constant",)], protocol
    )


# ---- validation -----------------------------------------------------------------------------------------------
def sample_architectures(space: SearchSpace, count: int, seed: int) -> list[Architecture]:
    """``count`` distinct architectures drawn uniformly from ``space`` (fewer if the space is smaller)."""
    rng = np.random.default_rng(seed)
    genes = np.zeros((0, space.n_blocks, 3), dtype=np.int64)
    for _ in range(100):
        genes = np.concatenate([genes, space.sample(rng, count)])
        _, first = np.unique(space.keys(genes), return_index=True)
        genes = genes[np.sort(first)]
        if len(genes) >= count:
            break
    return [space.to_architecture(g, name=f"sample{i}") for i, g in enumerate(genes[:count])]


def check_predictor(
    table: LatencyTable,
    space: SearchSpace,
    *,
    architectures: int = 20,
    seed: int = 0,
    warmup: int = 3,
    repeats: int = 16,
    group: int | None = None,
    device: str | torch.device | None = None,
) -> dict:
    """Predicted against measured whole-model latency of ``architectures`` sampled architectures.

    Whole models (random weights, the table's convention) are measured with :func:`measure_models`
    under the table's protocol (batch, sequence length, threads, dtype), ``group`` models at a time
    (all by default), and compared by the table's statistic.  Returns the mean / median / max
    absolute relative error, the mean signed relative error (bias), Spearman's rho and Kendall's
    tau, and one row per architecture."""
    from scipy import stats

    table.check_space(space)
    proto = table.protocol
    device = proto.get("torch_device", "cpu") if device is None else device
    archs = sample_architectures(space, architectures, seed)
    if len(archs) < 3:
        raise ValueError(f"need at least 3 distinct architectures to rank; the space gave {len(archs)}")
    group = group or len(archs)
    measured = {}
    for start in range(0, len(archs), group):
        chunk = archs[start : start + group]
        run = measure_models(
            {a.name: (lambda a=a: merino_model(a, table.convention)) for a in chunk},
            device,
            batch_size=proto["batch_size"],
            seq_len=proto["seq_len"],
            warmup=warmup,
            repeats=repeats,
            threads=proto["threads"],
            dtype=proto["dtype"],
            seed=seed,
            backend=proto.get("backend", "torch"),
        )
        measured.update(run["models"])
    key = f"{proto['statistic']}_ms"
    predicted = table.batch(*(np.array([getattr(a, k) for a in archs]) for k in ("widths", "ffn_dims", "depths")))
    actual = np.array([measured[a.name][key] for a in archs])
    rel = (predicted - actual) / actual
    return {
        "architectures": len(archs),
        "statistic": proto["statistic"],
        "seed": seed,
        "repeats": repeats,
        "mean_abs_rel_error": float(np.abs(rel).mean()),
        "median_abs_rel_error": float(np.median(np.abs(rel))),
        "max_abs_rel_error": float(np.abs(rel).max()),
        "mean_rel_error": float(rel.mean()),
        "spearman": float(stats.spearmanr(predicted, actual).statistic),
        "kendall": float(stats.kendalltau(predicted, actual).statistic),
        "table": table.describe(),
        "measurement": run["protocol"],
        "rows": [
            {
                "architecture": a.to_dict(),
                "predicted_ms": float(p),
                "measured_ms": float(m),
                "measured_mean_ms": measured[a.name]["mean_ms"],
                "measured_median_ms": measured[a.name]["median_ms"],
                "rel_error": float(r),
            }
            for a, p, m, r in zip(archs, predicted, actual, rel)
        ],
    }
