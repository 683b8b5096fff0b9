"""Architecture encoding and the block-wise search space (paper Table 7, Algorithm 2).

A MeRino architecture is a sequence of N transformer blocks; block i has width
E_i (embedding dim inside the block, E_i / head_dim attention heads), FFN width
F_i and depth L_i (layers that share one set of weights).  The paper's Table 8
writes F_i as a ratio R_i of E_i; both spellings load.  A search space's FFN axis is
either that ratio grid (Table 8, Algorithm 2 mutates R_i; F_i = R_i E_i) or Table 7's
absolute grid of widths.

Genes: for the vectorised search an architecture in a :class:`SearchSpace` is an
integer array of shape (N, 3) holding grid indices (E index, F index, L index),
and a population is an array of shape (P, N, 3).  The F index points into the ratio grid
or into the absolute grid; :attr:`SearchSpace.ffn_table` maps (E index, F index) to F.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

DEFAULT_FFN_RATIOS = (1, 1.5, 2, 2.5, 3, 3.5, 4)  # Table 8's R in {1, 1.5}, extended to GPT's 4 in half steps


class ArchitectureError(ValueError):
    """An architecture that is malformed or outside a search space."""


@dataclass(frozen=True)
class Block:
    """One transformer block: width E, FFN width F and depth L (layers sharing weights)."""

    embed_dim: int
    ffn_dim: int
    depth: int


@dataclass(frozen=True)
class Architecture:
    """A MeRino structure: an ordered tuple of :class:`Block`."""

    blocks: tuple[Block, ...]
    name: str = ""

    @property
    def widths(self) -> list[int]:
        return [b.embed_dim for b in self.blocks]

    @property
    def ffn_dims(self) -> list[int]:
        return [b.ffn_dim for b in self.blocks]

    @property
    def depths(self) -> list[int]:
        return [b.depth for b in self.blocks]

    @property
    def n_layers(self) -> int:
        return sum(self.depths)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(E, F, L) as int64 arrays of shape (1, N): the batch form the cost and entropy code take."""
        return tuple(np.asarray([v], dtype=np.int64) for v in (self.widths, self.ffn_dims, self.depths))

    def validate(self, head_dim: int = 64) -> Architecture:
        """Structural checks every model needs; raises :class:`ArchitectureError` naming the block."""
        if not self.blocks:
            raise ArchitectureError("architecture has no blocks")
        for i, b in enumerate(self.blocks):
            for field, value in (("embed_dim", b.embed_dim), ("ffn_dim", b.ffn_dim), ("depth", b.depth)):
                if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                    raise ArchitectureError(f"block {i}: {field} must be a positive integer, got {value!r}")
            if b.embed_dim % head_dim:
                raise ArchitectureError(
                    f"block {i}: embed_dim {b.embed_dim!r} is not a multiple of head_dim {head_dim}"
                )
        return self

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "E": self.widths,
            "F": self.ffn_dims,
            "L": self.depths,
        }

    @classmethod
    def from_dict(cls, data: dict, name: str = "") -> Architecture:
        """Read ``{"E": [...], "F": [...] or "R": [...], "L": [...]}`` (paper Table 8 uses R, F_i = R_i * E_i)."""
        if not isinstance(data, dict):
            raise ArchitectureError(f"architecture must be a mapping with keys E, F (or R), L; got {data!r}")
        missing = [k for k in ("E", "L") if k not in data]
        if missing or ("F" not in data and "R" not in data):
            raise ArchitectureError(
                f"architecture needs keys E, L and one of F or R; missing {missing or ['F/R']} in {sorted(data)}"
            )
        widths, depths = list(data["E"]), list(data["L"])
        if "F" in data:
            ffn = list(data["F"])
        else:
            ffn = []
            for i, (r, e) in enumerate(zip(data["R"], widths)):
                f = r * e
                if not float(f).is_integer():
                    raise ArchitectureError(f"block {i}: R*E = {r!r}*{e!r} is not an integer FFN width")
                ffn.append(int(f))
        if not len(widths) == len(ffn) == len(depths):
            raise ArchitectureError(
                f"E, F/R and L must have one entry per block; got lengths {len(widths)}, {len(ffn)}, {len(depths)}"
            )
        blocks = []
        for i, (e, f, l) in enumerate(zip(widths, ffn, depths)):
            for key, v in (("E", e), ("F", f), ("L", l)):
                if isinstance(v, float) and v.is_integer():
                    v = int(v)
                if not isinstance(v, int) or isinstance(v, bool):
                    raise ArchitectureError(f"block {i}: {key} must be an integer, got {v!r}")
            blocks.append(Block(int(e), int(f), int(l)))
        return cls(tuple(blocks), name=data.get("name", name) or name)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Architecture:
        """Load an architecture JSON file; the file may also be a search result holding one under "architecture"."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ArchitectureError(f"cannot read architecture file {str(path)!r}: {err}") from err
        if isinstance(data, dict) and "architecture" in data:
            data = data["architecture"]
        try:
            return cls.from_dict(data)
        except ArchitectureError as err:
            raise ArchitectureError(f"{path}: {err}") from err

    def __str__(self) -> str:
        body = ", ".join(f"({b.embed_dim},{b.ffn_dim},{b.depth})" for b in self.blocks)
        return f"{self.name or 'arch'}[(E,F,L): {body}]"


@dataclass(frozen=True)
class SearchSpace:
    """The grid of paper Table 7: E in [e_min, e_max] step e_step, L from ``depths``, and F either
    on Table 7's absolute grid [f_min, f_max] step f_step or, when ``ffn_ratios`` is given, F = R E
    for R in ``ffn_ratios`` (Table 8 and Algorithm 2's ratio axis).

    ``non_decreasing_width`` forbids E_{i+1} < E_i (the shape of every Table 8 structure).
    """

    n_blocks: int = 4
    e_min: int = 64
    e_max: int = 1024
    e_step: int = 64
    f_min: int = 128
    f_max: int = 4096
    f_step: int = 128
    depths: tuple[int, ...] = (1, 2, 3, 4)
    head_dim: int = 64
    non_decreasing_width: bool = True
    ffn_ratios: tuple[float, ...] = ()

    def __post_init__(self):
        for lo, hi, step, key in (
            (self.e_min, self.e_max, self.e_step, "embed_dim"),
            (self.f_min, self.f_max, self.f_step, "ffn_dim"),
        ):
            if step < 1 or lo < 1 or hi < lo or (hi - lo) % step:
                raise ValueError(
                    f"search_space.{key}: need 1 <= min <= max and (max-min) % step == 0, got "
                    f"min={lo!r} max={hi!r} step={step!r}"
                )
        if self.e_min % self.head_dim or self.e_step % self.head_dim:
            raise ValueError(
                f"search_space.embed_dim: min ({self.e_min}) and step ({self.e_step}) must be "
                f"multiples of head_dim ({self.head_dim})"
            )
        if not self.depths or min(self.depths) < 1 or list(self.depths) != sorted(set(self.depths)):
            raise ValueError(f"search_space.depths must be increasing positive integers, got {self.depths!r}")
        if self.n_blocks < 1:
            raise ValueError(f"search_space.n_blocks must be >= 1, got {self.n_blocks!r}")
        ratios = list(self.ffn_ratios)
        if ratios and (min(ratios) <= 0 or ratios != sorted(set(ratios))):
            raise ValueError(f"search_space.ffn_ratio must be increasing positive numbers, got {ratios!r}")
        odd = [(int(e), r) for e in self.e_grid for r in ratios if not float(r * e).is_integer()]
        if odd:
            raise ValueError(
                f"search_space.ffn_ratio: R * E must be a whole FFN width for every E of the grid; "
                f"(E, R) = {odd[0]} gives {odd[0][0] * odd[0][1]}"
            )

    @classmethod
    def from_config(cls, cfg: dict, head_dim: int) -> SearchSpace:
        """From config ``search_space`` (and ``model.head_dim``).  The FFN axis is the ratio grid
        ``ffn_ratio`` (the paper's reading; the default when neither is given) or Table 7's absolute
        grid ``ffn_dim``."""
        ratios, absolute = cfg.get("ffn_ratio"), cfg.get("ffn_dim")
        if ratios is not None and absolute is not None:
            raise ValueError(
                "search_space: give ffn_ratio (F = R E) or ffn_dim (absolute widths), not both; "
                f"got ffn_ratio={ratios!r} and ffn_dim={absolute!r} (a config layered over one "
                "with the other key switches axis by setting that key to null)"
            )
        return cls(
            n_blocks=cfg["n_blocks"],
            e_min=cfg["embed_dim"]["min"],
            e_max=cfg["embed_dim"]["max"],
            e_step=cfg["embed_dim"]["step"],
            **(
                {}
                if absolute is None
                else {"f_min": absolute["min"], "f_max": absolute["max"], "f_step": absolute["step"]}
            ),
            depths=tuple(cfg["depths"]),
            head_dim=head_dim,
            non_decreasing_width=cfg["non_decreasing_width"],
            ffn_ratios=() if absolute is not None else tuple(DEFAULT_FFN_RATIOS if ratios is None else ratios),
        )

    # ---- grids -------------------------------------------------------------------------------
    @property
    def e_grid(self) -> np.ndarray:
        return np.arange(self.e_min, self.e_max + 1, self.e_step, dtype=np.int64)

    @property
    def f_grid(self) -> np.ndarray:
        """The absolute FFN widths (Table 7's grid); with a ratio axis, every F any E can have."""
        if self.ffn_ratios:
            return np.unique(self.ffn_table)
        return np.arange(self.f_min, self.f_max + 1, self.f_step, dtype=np.int64)

    @cached_property
    def ffn_table(self) -> np.ndarray:
        """F for every (E index, F index): (nE, nF)."""
        if self.ffn_ratios:
            return np.rint(np.outer(self.e_grid, self.ffn_ratios)).astype(np.int64)
        return np.broadcast_to(self.f_grid, (len(self.e_grid), len(self.f_grid)))

    @property
    def l_grid(self) -> np.ndarray:
        return np.asarray(self.depths, dtype=np.int64)

    @property
    def gene_sizes(self) -> tuple[int, int, int]:
        return (*self.ffn_table.shape, len(self.l_grid))

    def layer_shapes(self) -> list[tuple[int, int]]:
        """Every (E, F) a layer of this space can have."""
        table = self.ffn_table
        return sorted({(int(e), int(f)) for e, row in zip(self.e_grid, table) for f in row})

    def size(self) -> int:
        """Number of architectures in the space (non-decreasing widths counted as multisets)."""
        ne, nf, nl = self.gene_sizes
        n = self.n_blocks
        widths = math.comb(ne + n - 1, n) if self.non_decreasing_width else ne**n
        return widths * (nf * nl) ** n

    def matrix_shapes(self) -> list[tuple[int, int]]:
        """Every weight-matrix shape a layer of this space has: (E, head_dim), (E, E) and (E, F)."""
        shapes = {(int(e), self.head_dim) for e in self.e_grid}
        shapes |= {(int(e), int(e)) for e in self.e_grid}
        return sorted(shapes | set(self.layer_shapes()))

    # ---- genes <-> architectures ---------------------------------------------------------------
    def decode(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gene array (..., N, 3) -> (E, F, L) value arrays of shape (..., N)."""
        return self.e_grid[genes[..., 0]], self.ffn_table[genes[..., 0], genes[..., 1]], self.l_grid[genes[..., 2]]

    def to_architecture(self, genes: np.ndarray, name: str = "") -> Architecture:
        e, f, l = self.decode(np.asarray(genes))
        return Architecture(tuple(Block(int(a), int(b), int(c)) for a, b, c in zip(e, f, l)), name=name)

    def encode(self, arch: Architecture) -> np.ndarray:
        """Architecture -> genes (N, 3); raises :class:`ArchitectureError` naming the first offending block."""
        self.check(arch)
        genes = np.empty((self.n_blocks, 3), dtype=np.int64)
        for i, b in enumerate(arch.blocks):
            e = (b.embed_dim - self.e_min) // self.e_step
            genes[i] = (e, int(np.flatnonzero(self.ffn_table[e] == b.ffn_dim)[0]), self.depths.index(b.depth))
        return genes

    def check(self, arch: Architecture) -> Architecture:
        """Raise :class:`ArchitectureError` unless ``arch`` lies in this space."""
        arch.validate(self.head_dim)
        if len(arch.blocks) != self.n_blocks:
            raise ArchitectureError(f"architecture has {len(arch.blocks)} blocks, search space has {self.n_blocks}")
        for i, b in enumerate(arch.blocks):
            if not (self.e_min <= b.embed_dim <= self.e_max and (b.embed_dim - self.e_min) % self.e_step == 0):
                raise ArchitectureError(
                    f"block {i}: E={b.embed_dim!r} not in range({self.e_min}, {self.e_max}+1, {self.e_step})"
                )
            if self.ffn_ratios and b.ffn_dim not in self.ffn_table[(b.embed_dim - self.e_min) // self.e_step]:
                raise ArchitectureError(
                    f"block {i}: F={b.ffn_dim!r} is not R*E for E={b.embed_dim} and R in {list(self.ffn_ratios)}"
                )
            if not self.ffn_ratios and not (
                self.f_min <= b.ffn_dim <= self.f_max and (b.ffn_dim - self.f_min) % self.f_step == 0
            ):
                raise ArchitectureError(
                    f"block {i}: F={b.ffn_dim!r} not in range({self.f_min}, {self.f_max}+1, {self.f_step})"
                )
            if b.depth not in self.depths:
                raise ArchitectureError(f"block {i}: L={b.depth!r} not in {list(self.depths)}")
            if self.non_decreasing_width and i and b.embed_dim < arch.blocks[i - 1].embed_dim:
                raise ArchitectureError(
                    f"block {i}: E={b.embed_dim} is narrower than block {i - 1} (E={arch.blocks[i - 1].embed_dim}); "
                    "widths must be non-decreasing"
                )
        return arch

    def valid_genes(self, genes: np.ndarray) -> np.ndarray:
        """Boolean mask (P,) of populations (P, N, 3) that satisfy the width ordering."""
        if not self.non_decreasing_width or self.n_blocks == 1:
            return np.ones(genes.shape[0], dtype=bool)
        return np.all(np.diff(genes[..., 0], axis=-1) >= 0, axis=-1)

    # ---- sampling and mutation (Algorithm 2) -----------------------------------------------------
    def sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` architectures drawn uniformly from the space, as genes (count, N, 3)."""
        ne, nf, nl = self.gene_sizes
        n = self.n_blocks
        genes = np.empty((count, n, 3), dtype=np.int64)
        if self.non_decreasing_width:
            # uniform over multisets: n distinct values of range(ne + n - 1), sorted, minus 0..n-1
            picks = np.argsort(rng.random((count, ne + n - 1)), axis=1)[:, :n]
            genes[..., 0] = np.sort(picks, axis=1) - np.arange(n)
        else:
            genes[..., 0] = rng.integers(0, ne, (count, n))
        genes[..., 1] = rng.integers(0, nf, (count, n))
        genes[..., 2] = rng.integers(0, nl, (count, n))
        return genes

    def mutate(self, rng: np.random.Generator, parents: np.ndarray, max_step: int = 2) -> np.ndarray:
        """Algorithm 2: in each parent pick one block and one of (E, F, L) and move it by 1..max_step
        grid steps up or down (clipped to the grid; a clipped no-op goes the other way).  With
        non-decreasing widths, a width move carries its neighbours along (E_j <- min(E_j, E_i) before
        block i, max after), so every child stays in the space."""
        children = parents.copy()
        p, n, _ = parents.shape
        rows = np.arange(p)
        block = rng.integers(0, n, p)
        gene = rng.integers(0, 3, p)
        step = rng.integers(1, max_step + 1, p) * rng.choice(np.array([-1, 1]), p)
        upper = np.asarray(self.gene_sizes)[gene] - 1
        old = children[rows, block, gene]
        new = np.clip(old + step, 0, upper)
        stuck = new == old
        new[stuck] = np.clip(old[stuck] - step[stuck], 0, upper[stuck])
        children[rows, block, gene] = new
        if self.non_decreasing_width:
            width = np.where(gene == 0, new, children[rows, block, 0])[:, None]
            position = np.arange(n)[None, :]
            e = children[..., 0]
            e[:] = np.where(position < block[:, None], np.minimum(e, width), np.maximum(e, width))
        return children

    def keys(self, genes: np.ndarray) -> np.ndarray:
        """A unique int64 key per architecture (for de-duplication)."""
        ne, nf, nl = self.gene_sizes
        per_block = genes[..., 0] * (nf * nl) + genes[..., 1] * nl + genes[..., 2]
        radix = ne * nf * nl
        if radix**self.n_blocks >= 2**62:
            raise ValueError("search space too large for int64 architecture keys")
        return (per_block * radix ** np.arange(self.n_blocks)).sum(axis=-1)
