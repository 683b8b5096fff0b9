"""A device you do not own, described by its datasheet (config ``latency.datasheets``).

Peak FLOP/s per dtype, memory bandwidth and size, the dtype models run in, and efficiency factors:
``compute`` and ``bandwidth`` (fractions of the peaks reached) and ``overhead_us`` (fixed cost of one kernel
launch).  :mod:`merino.roofline` predicts latency from it.  Torch-free, so config checks can build one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

EFFICIENCY_KEYS = ("compute", "bandwidth", "overhead_us")
IDEAL = {"compute": 1.0, "bandwidth": 1.0, "overhead_us": 0.0}  # the datasheet's peaks, no launch cost
_ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2}
_ALIASES = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}


def _dtype(name: str, key: str) -> str:
    dtype = _ALIASES.get(name, name)
    if dtype not in _ITEMSIZE:
        raise ValueError(f"config {key}={name!r} is not a dtype the roofline knows ({sorted(_ITEMSIZE)})")
    return dtype


@dataclass(frozen=True)
class Datasheet:
    """A device's datasheet: ``peak_flops`` (dtype -> FLOP/s), ``bandwidth`` (B/s), ``memory_bytes``,
    ``dtype``, ``efficiency`` (:data:`EFFICIENCY_KEYS`, missing ones ideal) and ``source`` citing the figures.
    ``name`` is the device label budgets use (``latency50ms-<name>``)."""

    name: str
    peak_flops: dict
    bandwidth: float
    memory_bytes: float
    dtype: str = "float32"
    efficiency: dict = field(default_factory=dict)
    source: str = ""

    def __post_init__(self):
        key = f"latency.datasheets.{self.name}"
        peaks = {_dtype(k, f"{key}.peak_gflops key"): float(v) for k, v in self.peak_flops.items()}
        dtype = _dtype(self.dtype, f"{key}.dtype")
        if dtype not in peaks:
            raise ValueError(f"config {key}.dtype={self.dtype!r} has no peak in {key}.peak_gflops ({sorted(peaks)})")
        for name, value in [
            *((f"peak_gflops.{k}", v) for k, v in peaks.items()),
            ("bandwidth_gbs", self.bandwidth),
            ("memory_gb", self.memory_bytes),
        ]:
            if not value > 0:
                raise ValueError(f"config {key}.{name}={value!r} must be positive")
        unknown = sorted(set(self.efficiency) - set(EFFICIENCY_KEYS))
        if unknown:
            raise ValueError(f"config {key}.efficiency has unknown keys {unknown}; known: {list(EFFICIENCY_KEYS)}")
        eff = {**IDEAL, **self.efficiency}
        for k in ("compute", "bandwidth"):
            if not 0 < eff[k] <= 1:
                raise ValueError(f"config {key}.efficiency.{k}={eff[k]!r} must be in (0, 1] (a fraction of the peak)")
        if not eff["overhead_us"] >= 0:
            raise ValueError(f"config {key}.efficiency.overhead_us={eff['overhead_us']!r} must be >= 0")
        object.__setattr__(self, "peak_flops", peaks)
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "efficiency", {k: float(eff[k]) for k in EFFICIENCY_KEYS})

    @classmethod
    def from_config(cls, name: str, entry: Mapping) -> Datasheet:
        """From a config ``latency.datasheets.<name>`` entry: ``peak_gflops`` {dtype: GFLOP/s}, ``bandwidth_gbs``
        (GB/s), ``memory_gb``, ``dtype``, ``efficiency`` {compute, bandwidth, overhead_us}, ``source``."""
        missing = [k for k in ("peak_gflops", "bandwidth_gbs", "memory_gb") if k not in entry]
        if missing:
            raise ValueError(f"config latency.datasheets.{name} lacks {missing}")
        return cls(
            name,
            {k: float(v) * 1e9 for k, v in entry["peak_gflops"].items()},
            float(entry["bandwidth_gbs"]) * 1e9,
            float(entry["memory_gb"]) * 1e9,
            entry.get("dtype", "float32"),
            dict(entry.get("efficiency") or {}),
            entry.get("source", ""),
        )

    def with_efficiency(self, **efficiency) -> Datasheet:
        """The same device with some efficiency factors replaced."""
        return Datasheet(
            self.name,
            self.peak_flops,
            self.bandwidth,
            self.memory_bytes,
            self.dtype,
            {**self.efficiency, **efficiency},
            self.source,
        )

    @property
    def peak(self) -> float:
        """Peak FLOP/s at the device's dtype."""
        return self.peak_flops[self.dtype]

    @property
    def itemsize(self) -> int:
        """Bytes of one floating-point value at the device's dtype."""
        return _ITEMSIZE[self.dtype]

    def to_dict(self) -> dict:
        return asdict(self)
