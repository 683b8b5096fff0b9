"""Transformer entropy (paper Eqs. 7, 9/11, 12-15) and its lookup table (paper Fig. 2).

Eq. 7 (subspace entropy of a linear map): for W in R^{m x n} with singular values s_j,
    H(W) = E_W [ sum_j log(1 + s_j^2 / eps^2) ],
the expectation over the random initialisation W_ij ~ N(0, init_std^2).  We compute it
exactly per draw (as log det(I + G / eps^2), G the smaller Gram matrix, in float64) and
average seeded draws until the standard error is below ``rel_tol``.  The paper publishes neither the
initialisation, eps, the log base nor the number of draws; our defaults (config ``entropy``) are recorded in
every output.

Eq. 12 (MHSA): per head h, Q, K and V are E x head_dim maps; the output projection is E x E:
    H_MHSA(E) = 3 (E / head_dim) H(E x head_dim) + H(E x E).
Eq. 13 (FFN): H_FFN(E, F) = H(E x F) + H(F x E) = 2 H(E x F).
Eq. 14 (block i, L_i layers applied in sequence, shared or not):
    H_i = L_i (alpha_MHSA H_MHSA(E_i) + alpha_FFN H_FFN(E_i, F_i)),   H = sum_i H_i.
Eq. 9/11 (effectiveness): gamma = beta L / log2(w_hat), L = sum_i L_i.  The paper's Table 1
values (0.008 for L=1, E=256 and 0.25 for L=24, E=64 with beta = 1/16) pin the base-2 log of
the width; for a block-wise model w_hat = min_i E_i, the narrowest block.
Eq. 15 (the design objective): maximise
    sum_j L_j [ alpha_MHSA (1 - beta L_j / log E_j) H_MHSA(E_j) + alpha_FFN (1 - beta L_j / log F_j) H_FFN(E_j, F_j) ]
subject to the budget (objective ``eq15``; the log's base, unpublished, is ``penalty_log_base``).
Beside it (see :data:`ENTROPY_OBJECTIVES`): ``eq15_exp`` with exp(-kappa beta L_j / log x) per module, and
the ``entropy`` family, which multiplies the whole Eq. 14 sum by exp(-kappa gamma) with Eq. 11's global
gamma -- our form before, kept under its name so that results computed with it stay reproducible.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .space import Architecture, SearchSpace

if TYPE_CHECKING:
    import torch
# torch is imported where matrices are drawn: the workflow's config checks import this module (through
# merino.search) on every Snakemake call, and importing torch would double the paper dry run's time.


@dataclass(frozen=True)
class EntropyConstants:
    """Every constant of the entropy (see module docstring); the defaults are documented in config."""

    init_std: float = 0.02
    epsilon: float = 0.02
    log_base: float = math.e
    draws: int = 3
    max_draws: int = 64
    rel_tol: float = 1e-4
    seed: int = 0
    beta: float = 1 / 16
    gamma_strength: float = 8.0
    penalty_log_base: float = 2.0
    alpha_mhsa: float = 0.5
    alpha_ffn: float = 1.0
    head_dim: int = 64

    @classmethod
    def from_config(cls, cfg: dict, head_dim: int) -> EntropyConstants:
        """From config ``entropy`` (or the part of it a lookup table needs; the rest keep defaults)."""
        keys = (
            "init_std",
            "epsilon",
            "draws",
            "max_draws",
            "rel_tol",
            "seed",
            "beta",
            "gamma_strength",
            "penalty_log_base",
        )
        args = {k: cfg[k] for k in keys if k in cfg}
        if "log_base" in cfg:
            args["log_base"] = math.e if cfg["log_base"] == "e" else float(cfg["log_base"])
        if "alpha" in cfg:
            args["alpha_mhsa"], args["alpha_ffn"] = cfg["alpha"]["mhsa"], cfg["alpha"]["ffn"]
        return cls(**args, head_dim=head_dim)

    def table_key(self) -> dict:
        """The constants a lookup table depends on (matrix entropies only)."""
        return {
            k: getattr(self, k) for k in ("init_std", "epsilon", "log_base", "draws", "max_draws", "rel_tol", "seed")
        }


# ---- Eq. 7 -----------------------------------------------------------------------------------------
def matrix_entropy(w: torch.Tensor, epsilon: float, log_base: float = math.e) -> float:
    """Eq. 7 for one given matrix: sum_j log(1 + s_j^2 / eps^2) = log det(I + G / eps^2) with G the smaller
    Gram matrix (its eigenvalues are the s_j^2), from the Cholesky factor's diagonal in float64.  The same
    value as from the singular values (to rounding: I + G / eps^2 has every eigenvalue >= 1), several times
    faster than an eigendecomposition on square shapes."""
    import torch

    w = w.double()
    gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    gram.div_(epsilon**2).diagonal().add_(1.0)
    logdet = 2 * torch.linalg.cholesky(gram).diagonal().log().sum()
    return float(logdet / math.log(log_base))


def _draw_seed(seed: int, rows: int, cols: int, draw: int) -> int:
    return int(np.random.SeedSequence([seed, rows, cols, draw]).generate_state(1)[0])


def random_matrix(rows: int, cols: int, init_std: float, seed: int) -> torch.Tensor:
    import torch

    gen = torch.Generator().manual_seed(seed)
    return torch.randn(rows, cols, generator=gen, dtype=torch.float64) * init_std


def expected_matrix_entropy(rows: int, cols: int, c: EntropyConstants) -> float:
    """Eq. 7: the mean of H(W) over seeded draws of an initialised rows x cols matrix.

    At least ``c.draws`` draws; more (up to ``c.max_draws``) until the standard error of the mean
    is at most ``c.rel_tol`` of it.  Small matrices fluctuate most and cost least, so they get the
    extra draws.  H(W) = H(W^T): the shape is canonicalised, so (m, n) and (n, m) agree exactly."""
    m, n = sorted((int(rows), int(cols)))
    values = []
    while len(values) < c.max_draws:
        w = random_matrix(m, n, c.init_std, _draw_seed(c.seed, m, n, len(values)))
        values.append(matrix_entropy(w, c.epsilon, c.log_base))
        if len(values) >= c.draws:
            mean, sem = np.mean(values), np.std(values, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
            if sem <= c.rel_tol * abs(mean):
                break
    return float(np.mean(values))


# ---- lookup table (paper Fig. 2) -----------------------------------------------------------------------
class EntropyLookupTable:
    """Expected matrix entropies (Eq. 7) keyed by shape; shapes not in the table are computed on demand."""

    def __init__(self, constants: EntropyConstants, entries: dict[tuple[int, int], float] | None = None):
        self.constants = constants
        self.entries: dict[tuple[int, int], float] = dict(entries or {})

    def matrix(self, rows: int, cols: int) -> float:
        key = tuple(sorted((int(rows), int(cols))))
        if key not in self.entries:
            self.entries[key] = expected_matrix_entropy(*key, self.constants)
        return self.entries[key]

    @classmethod
    def build(cls, space: SearchSpace, constants: EntropyConstants, progress: bool = True) -> EntropyLookupTable:
        """Precompute every matrix shape ``space`` can produce (largest first, so the bar is honest)."""
        from tqdm import tqdm

        table = cls(constants)
        shapes = sorted({tuple(sorted(s)) for s in space.matrix_shapes()}, key=lambda s: -s[0] * s[0] * s[1])
        for m, n in tqdm(shapes, desc="entropy lookup", unit="shape", disable=not progress, mininterval=2):
            table.matrix(m, n)
        return table

    def save(self, path: str | Path, provenance: dict | None = None) -> None:
        data = {
            "constants": asdict(self.constants),
            "entries": [[m, n, v] for (m, n), v in sorted(self.entries.items())],
            "provenance": provenance or {},
        }
        Path(path).write_text(json.dumps(data, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path, constants: EntropyConstants) -> EntropyLookupTable:
        """Load a table, refusing one built with other matrix-entropy constants."""
        data = json.loads(Path(path).read_text())
        built = EntropyConstants(**data["constants"]).table_key()
        if built != constants.table_key():
            diff = {k: (built[k], v) for k, v in constants.table_key().items() if built[k] != v}
            raise ValueError(
                f"lookup table {str(path)!r} was built with other entropy constants (table, config): {diff}; rebuild it"
            )
        return cls(constants, {(int(m), int(n)): float(v) for m, n, v in data["entries"]})

    # ---- vectorised pieces for the search --------------------------------------------------------
    def mhsa(self, e: int) -> float:
        """Eq. 12."""
        hd = self.constants.head_dim
        return 3 * (e // hd) * self.matrix(e, hd) + self.matrix(e, e)

    def ffn(self, e: int, f: int) -> float:
        """Eq. 13."""
        return 2 * self.matrix(e, f)

    def grids(self, space: SearchSpace) -> tuple[np.ndarray, np.ndarray]:
        """H_MHSA over the E grid (nE,) and H_FFN over the (E index, F index) grid (nE, nF)."""
        mhsa = np.array([self.mhsa(int(e)) for e in space.e_grid])
        ffn = np.array([[self.ffn(int(e), int(f)) for f in row] for e, row in zip(space.e_grid, space.ffn_table)])
        return mhsa, ffn


# ---- Eqs. 9/11, 14, 15: the design objectives ----------------------------------------------------------
@dataclass(frozen=True)
class ObjectiveForm:
    """How an entropy objective weighs modules and penalises depth.

    ``penalty``: ``eq15`` (Eq. 15 as published: per block j, (1 - beta L_j / log E_j) on the attention
    entropy and (1 - beta L_j / log F_j) on the FFN entropy), ``eq15_exp`` (the same per-block,
    per-module terms as exp(-kappa beta L_j / log x)), ``global`` (ours before Eq. 15 was read:
    one gamma = beta sum_i L_i / log2(min_i E_i) of Eq. 9/11 and exp(-kappa gamma) on the whole sum)
    or ``none``.  ``alpha``: weight the modules by alpha_MHSA, alpha_FFN (Eq. 14) or by 1."""

    penalty: str
    alpha: bool

    @property
    def per_block(self) -> bool:
        """The objective is a sum of per-block terms (no factor of the whole architecture)."""
        return self.penalty != "global"


# name -> form.  Table 6's rows (none / gamma / gamma+alpha) are eq15_plain, eq15_gamma, eq15; the
# global family keeps the names results were computed under before, with their old meaning.
ENTROPY_OBJECTIVES = {
    "eq15": ObjectiveForm("eq15", True),
    "eq15_gamma": ObjectiveForm("eq15", False),
    "eq15_plain": ObjectiveForm("none", False),
    "eq15_exp": ObjectiveForm("eq15_exp", True),
    "entropy": ObjectiveForm("global", True),
    "entropy_gamma": ObjectiveForm("global", False),
    "entropy_plain": ObjectiveForm("none", False),
}


def objective_form(name: str) -> ObjectiveForm:
    if name not in ENTROPY_OBJECTIVES:
        raise ValueError(f"unknown entropy objective {name!r}; expected one of {sorted(ENTROPY_OBJECTIVES)}")
    return ENTROPY_OBJECTIVES[name]


def effectiveness(n_layers, min_width, beta: float):
    """Eq. 9/11: gamma = beta * L / log2(w_hat) (w_hat: the narrowest block width; Table 1 pins log2)."""
    return beta * np.asarray(n_layers, dtype=np.float64) / np.log2(np.asarray(min_width, dtype=np.float64))


def penalised(entropy, gamma, c: EntropyConstants):
    """The global form: H * exp(-kappa * gamma)."""
    return np.asarray(entropy) * np.exp(-c.gamma_strength * np.asarray(gamma))


def module_factor(depth, width, c: EntropyConstants, penalty: str):
    """Eq. 15's factor on one module of block j: 1 - beta L_j / log(x) (``eq15``) or exp(-kappa beta L_j /
    log(x)) (``eq15_exp``), x = E_j for attention and F_j for the FFN, log in base ``c.penalty_log_base``;
    1 for the other forms."""
    depth = np.asarray(depth, dtype=np.float64)
    ratio = c.beta * depth / (np.log(np.asarray(width, dtype=np.float64)) / math.log(c.penalty_log_base))
    if penalty == "eq15":
        return 1.0 - ratio
    if penalty == "eq15_exp":
        return np.exp(-c.gamma_strength * ratio)
    return np.ones(np.broadcast(depth, ratio).shape)


def block_objective(e, f, l, mhsa, ffn, c: EntropyConstants, form: ObjectiveForm):
    """One block's term of Eq. 15 (Eq. 14 when unpenalised): L_j (a_M p(L_j, E_j) H_MHSA(E_j) +
    a_F p(L_j, F_j) H_FFN(E_j, F_j)); arrays broadcast."""
    am, af = (c.alpha_mhsa, c.alpha_ffn) if form.alpha else (1.0, 1.0)
    pm, pf = module_factor(l, e, c, form.penalty), module_factor(l, f, c, form.penalty)
    return np.asarray(l) * (am * pm * np.asarray(mhsa) + af * pf * np.asarray(ffn))


def architecture_factor(n_layers, min_width, c: EntropyConstants, form: ObjectiveForm):
    """The factor of the whole architecture: exp(-kappa gamma) for the global form, else 1."""
    if form.penalty != "global":
        return np.ones(np.broadcast(n_layers, min_width).shape)
    return np.exp(-c.gamma_strength * effectiveness(n_layers, min_width, c.beta))


def objective_score(arch: Architecture, table: EntropyLookupTable, name: str) -> float:
    """The named entropy objective of one architecture (any widths, not only a search space's)."""
    form, c = objective_form(name), table.constants
    terms = [
        block_objective(
            b.embed_dim, b.ffn_dim, b.depth, table.mhsa(b.embed_dim), table.ffn(b.embed_dim, b.ffn_dim), c, form
        )
        for b in arch.blocks
    ]
    return float(sum(terms) * architecture_factor(arch.n_layers, min(arch.widths), c, form))


@dataclass(frozen=True)
class EntropyBreakdown:
    """Every entropy figure of one architecture (Table 1 columns, with Eq. 11's gamma) and its objective."""

    mhsa: float
    ffn: float
    entropy: float
    weighted_entropy: float
    gamma: float
    entropy_with_gamma: float
    objective: float
    objective_name: str

    def to_dict(self) -> dict:
        return asdict(self)


def architecture_entropy(arch: Architecture, table: EntropyLookupTable, objective: str = "entropy") -> EntropyBreakdown:
    """Eq. 14 with and without alpha, gamma (Eq. 11), H exp(-kappa gamma) and the named objective."""
    c = table.constants
    mhsa = sum(b.depth * table.mhsa(b.embed_dim) for b in arch.blocks)
    ffn = sum(b.depth * table.ffn(b.embed_dim, b.ffn_dim) for b in arch.blocks)
    gamma = float(effectiveness(arch.n_layers, min(arch.widths), c.beta))
    return EntropyBreakdown(
        mhsa=mhsa,
        ffn=ffn,
        entropy=mhsa + ffn,
        weighted_entropy=c.alpha_mhsa * mhsa + c.alpha_ffn * ffn,
        gamma=gamma,
        entropy_with_gamma=float(penalised(mhsa + ffn, gamma, c)),
        objective=objective_score(arch, table, objective),
        objective_name=objective,
    )


def sampled_architecture_entropy(arch: Architecture, c: EntropyConstants, draws: int, seed: int) -> float:
    """Eq. 14 (unweighted) computed exactly from freshly initialised weights: every block gets its own
    random Q, K, V (per head), O, W1 and W2 (one set, as the layers of a block share them), and the
    entropy is averaged over ``draws`` models.  This is the reference the lookup table is checked against."""
    rng = np.random.default_rng(seed)
    totals = []
    for _ in range(draws):
        total = 0.0
        for b in arch.blocks:
            e, f, hd = b.embed_dim, b.ffn_dim, c.head_dim

            def h(rows, cols):
                w = random_matrix(rows, cols, c.init_std, int(rng.integers(2**63)))
                return matrix_entropy(w, c.epsilon, c.log_base)

            mhsa = sum(h(e, hd) for _ in range(3 * (e // hd))) + h(e, e)
            total += b.depth * (mhsa + h(e, f) + h(f, e))
        totals.append(total)
    return float(np.mean(totals))


def lookup_error(archs: list[Architecture], table: EntropyLookupTable, draws: int, seed: int) -> list[dict]:
    """Paper Fig. 2: lookup-table entropy (Eq. 14, no alpha) against the exact entropy of freshly
    initialised weights, per architecture."""
    rows = []
    for k, arch in enumerate(archs):
        looked_up = architecture_entropy(arch, table).entropy
        exact = sampled_architecture_entropy(arch, table.constants, draws, seed=seed * 1_000_003 + k)
        rows.append(
            {
                "architecture": str(arch),
                "lookup_entropy": looked_up,
                "exact_entropy": exact,
                "relative_error": (looked_up - exact) / exact,
            }
        )
    return rows
