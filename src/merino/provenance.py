"""Provenance of result files: the settings used, package versions, input checksums, time and energy."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

PACKAGES = ("merino-workflow", "torch", "numpy", "scipy", "pandas", "snakemake", "transformers")
RAPL = Path("/sys/class/powercap/intel-rapl:0/energy_uj")


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions() -> dict:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _read_rapl() -> int | None:
    try:
        return int(RAPL.read_text())
    except (OSError, ValueError):
        return None


class Meter:
    """Wall time, CPU time and energy of a block of work.

    Energy comes from Intel RAPL (package 0) where the kernel lets us read it; otherwise it is
    *estimated* as CPU seconds x ``cpu_watts`` per busy core and labelled so."""

    def __init__(self, cpu_watts: float):
        self.cpu_watts = cpu_watts

    def __enter__(self) -> Meter:
        self._wall, self._cpu, self._energy = time.perf_counter(), time.process_time(), _read_rapl()
        return self

    def __exit__(self, *exc) -> None:
        self.wall_s = time.perf_counter() - self._wall
        self.cpu_s = time.process_time() - self._cpu
        end = _read_rapl()
        if self._energy is not None and end is not None and end >= self._energy:
            self.energy_j, self.energy_source = (end - self._energy) / 1e6, "measured (RAPL package 0)"
        else:
            self.energy_j = self.cpu_s * self.cpu_watts
            self.energy_source = f"estimated (CPU seconds x {self.cpu_watts} W declared per busy core)"

    def record(self) -> dict:
        return {
            "wall_s": round(self.wall_s, 4),
            "cpu_s": round(self.cpu_s, 4),
            "energy_J": round(self.energy_j, 3),
            "energy_Wh": round(self.energy_j / 3600, 6),
            "energy_source": self.energy_source,
        }


def provenance(
    settings: dict, inputs: dict[str, str | Path] | None = None, seed: int | None = None, wall_s: float | None = None
) -> dict:
    """Everything needed to tell how a result file came about."""
    return {
        "settings": settings,
        "seed": seed,
        "inputs_sha256": {k: sha256(v) for k, v in (inputs or {}).items()},
        "versions": versions(),
        "git_commit": _git_commit(),
        "host": {"machine": platform.machine(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_s": None if wall_s is None else round(wall_s, 3),
    }


def share_mode(path: str | Path) -> None:
    """Give a file the mode every other result file gets (0666 less the umask: 0644 under the usual 022).
    safetensors writes its files 0600, which a shared results folder, another user's Slurm job or a web
    server cannot read."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def write_json(path: str | Path, data: dict) -> None:
    """Write JSON atomically (a crash never leaves a half-written result)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n")
    os.replace(tmp, path)


def _jsonable(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def write_table(df, path: str | Path, prov: dict) -> Path:
    """Write a CSV table and its provenance beside it (``<stem>.provenance.json``); returns that path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    side = path.with_suffix(".provenance.json")
    write_json(side, prov)
    return side
