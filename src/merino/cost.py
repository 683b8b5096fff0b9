"""Compute cost of a MeRino architecture: parameters, FLOPs and memory (paper Tables 3, 5, 8).

The model (paper Fig. 4): token embedding V x D and learned positions P x D (D = embedding
projection dim, 768 in the paper), a linear projection (with bias) into every block whose
width differs from the width before it and one back to D after the last block, GPT layers
(attention Q, K, V, O with biases; FFN E -> F -> E with ReLU, Eq. 5; two LayerNorms, before
or after each sublayer: ``model.norm`` moves them and changes no count), a final LayerNorm of
width D, and an LM head tied to the token embedding.
With block-wise sharing the L_i layers of block i share one set of weights.

FLOPs convention (reproduces the MeRino column of paper Table 3): one forward pass over a
sequence of ``seq_len`` tokens (1024), 2 FLOPs per multiply-accumulate; every matmul of the
layers and projections counted, including the attention score (Q K^T) and value (A V)
products over the full T x T matrix; embeddings, biases, LayerNorms, softmax and the LM head
not counted (``count_lm_head`` adds the head, the convention under which the paper's
Pythia-70M / GPT-2 / Cerebras figures match).

All per-block functions take NumPy arrays and broadcast, so the search evaluates whole
populations with the same formulas that price a single architecture.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from .space import Architecture

COST_KINDS = ("flops", "params", "memory", "latency")
_UNITS = {
    "flops": {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12},
    "params": {"K": 1e3, "M": 1e6, "G": 1e9},
    "memory": {"KB": 2**10, "MB": 2**20, "GB": 2**30},
    "latency": {"us": 1e-3, "ms": 1.0, "s": 1e3, "x": 1.0},  # milliseconds; "x": relative (Budget.resolve)
}
RELATIVE_UNIT = "x"
# what a budget label looks like (the workflow's schema and wildcard constraints should accept the same)
BUDGET_PATTERN = r"^(flops|params|memory|latency)(\d+(?:\.\d+)?)([A-Za-z]+)(?:-([A-Za-z0-9][A-Za-z0-9_.-]*))?$"
_BUDGET_RE = re.compile(BUDGET_PATTERN)
MODEL_KINDS = ("flops", "params", "memory")  # the kinds CostModel prices; latency needs a device's table


@dataclass(frozen=True)
class Budget:
    """A ComputeCost budget (Eq. 15 constraint) such as ``flops60G``, ``params50M``, ``memory64MB``,
    ``latency50ms-cpu`` or ``latency2x-cpu``.

    Memory units are binary (1 MB = 2**20 bytes), so the paper's "10 % of a 4 GB device" is
    ``memory409.6MB``.  A latency budget names the device whose latency table
    (:class:`merino.latency.LatencyTable`) prices it; its ``value`` is in milliseconds.  With the unit
    ``x`` it is *relative*: ``latency2x-cpu`` is twice the latency of the smallest architecture of the
    search space (every gene at its minimum) on that device, so it is feasible on any device, however
    slow; :meth:`resolve` turns it into milliseconds once the device's table is known."""

    kind: str
    value: float
    label: str
    device: str | None = None
    relative: bool = False  # value is a multiple of the smallest architecture's cost (unit "x")

    @classmethod
    def parse(cls, label: str) -> Budget:
        m = _BUDGET_RE.match(label) if isinstance(label, str) else None
        if not m or m.group(3) not in _UNITS[m.group(1)]:
            raise ValueError(
                f"budget {label!r} is not of the form <kind><number><unit> with kind in {COST_KINDS} and unit in "
                f"{ {k: list(v) for k, v in _UNITS.items()} }, and -<device> after a latency budget "
                f"(e.g. 'flops60G', 'params50M', 'memory64MB', 'latency50ms-cpu', 'latency2x-cpu')"
            )
        kind, number, unit, device = m.groups()
        if kind == "latency" and device is None:
            raise ValueError(
                f"budget {label!r}: a latency budget must name the device whose latency table prices "
                f"it, as latency<number><unit>-<device> (e.g. 'latency50ms-cpu')"
            )
        if kind != "latency" and device is not None:
            raise ValueError(
                f"budget {label!r}: only latency budgets name a device; {kind} does not depend on one "
                f"(write {label.rsplit('-', 1)[0]!r})"
            )
        if unit == RELATIVE_UNIT:
            if float(number) < 1:
                raise ValueError(
                    f"budget {label!r}: a relative budget is a multiple of the smallest architecture's "
                    f"latency, so it must be at least 1x (e.g. 'latency2x-{device}')"
                )
            return cls(kind, float(number), label, device, relative=True)
        return cls(kind, float(number) * _UNITS[kind][unit], label, device)

    def resolve(self, smallest: float) -> Budget:
        """The budget in absolute units, given the cost of the smallest architecture of the space on its
        device (a relative budget is ``value`` times that; an absolute one is returned as it is)."""
        return replace(self, value=self.value * smallest, relative=False) if self.relative else self

    @property
    def unit(self) -> str:
        """The unit ``value`` is in."""
        return {"flops": "FLOPs", "params": "parameters", "memory": "bytes", "latency": "ms"}[self.kind]


@dataclass(frozen=True)
class CostModel:
    """Prices architectures under one model convention (vocabulary, projection dim, sequence length)."""

    vocab_size: int = 50257
    embed_proj_dim: int = 768
    max_positions: int = 2048
    seq_len: int = 1024
    head_dim: int = 64
    count_lm_head: bool = False
    shared: bool = True
    memory_bits: int = 32
    memory_seq_len: int = 128
    memory_kv_tokens: int = 0  # context the KV cache of generation holds (0: a forward pass, no cache)

    def __post_init__(self):
        if not 0 <= self.memory_kv_tokens <= self.max_positions:
            raise ValueError(
                f"cost.memory_kv_tokens = {self.memory_kv_tokens!r}: the KV cache's context must be between "
                f"0 and the model's max_positions ({self.max_positions})"
            )

    @classmethod
    def from_config(cls, model: dict, cost: dict, **overrides) -> CostModel:
        """From config sections ``model`` and ``cost``."""
        args = dict(
            vocab_size=model["vocab_size"],
            embed_proj_dim=model["embed_proj_dim"],
            max_positions=model["max_positions"],
            head_dim=model["head_dim"],
            shared=model["weight_sharing"],
            seq_len=cost["flops_seq_len"],
            count_lm_head=cost["count_lm_head"],
            memory_bits=cost["memory_bits"],
            memory_seq_len=cost["memory_seq_len"],
            memory_kv_tokens=cost.get("memory_kv_tokens", 0),
        )
        args.update(overrides)
        return cls(**args)

    # ---- per-layer / per-block terms (broadcast over arrays) -------------------------------------
    @staticmethod
    def layer_params(e, f):
        """One layer (pre- or post-LN alike): attention 4E^2+4E, FFN 2EF+F+E, two LayerNorms 4E."""
        return 4 * e * e + 2 * e * f + 9 * e + f

    @staticmethod
    def projection_params(e_in, e_out):
        """Linear(e_in, e_out) with bias, present only where the width changes."""
        return np.where(e_in != e_out, e_in * e_out + e_out, 0)

    def layer_flops(self, e, f):
        """2 * (T (4E^2 + 2EF) + 2 T^2 E): Q,K,V,O and FFN matmuls, plus Q K^T and A V."""
        t = self.seq_len
        return 2 * (t * (4 * e * e + 2 * e * f) + 2 * t * t * e)

    def projection_flops(self, e_in, e_out):
        return np.where(e_in != e_out, 2 * self.seq_len * e_in * e_out, 0)

    def layer_kv_bytes(self, e):
        """KV cache of one applied layer at ``memory_kv_tokens``: keys and values, E = heads x head width each."""
        return 2 * self.memory_kv_tokens * e * self.memory_bits / 8

    def block_term(self, kind: str, e, f, l):
        """Cost of one block that does not depend on its neighbours (``memory``: weight bytes and, at
        ``memory_kv_tokens``, the KV cache of its L applied layers: a shared layer caches every application)."""
        _check_model_kind(kind)
        if kind == "flops":
            return l * self.layer_flops(e, f)
        params = self.layer_params(e, f) * (1 if self.shared else l)
        if kind == "params":
            return params
        return params * self.memory_bits / 8 + l * self.layer_kv_bytes(e)

    def transition_term(self, kind: str, e_in, e_out):
        """Cost of the projection between two consecutive widths (D at both ends of the model)."""
        _check_model_kind(kind)
        if kind == "flops":
            return self.projection_flops(e_in, e_out)
        params = self.projection_params(e_in, e_out)
        return params if kind == "params" else params * self.memory_bits / 8

    def constant_term(self, kind: str) -> float:
        """Cost that no architecture choice changes: embeddings, final LayerNorm, LM head."""
        _check_model_kind(kind)
        d, v = self.embed_proj_dim, self.vocab_size
        if kind == "flops":
            return 2 * self.seq_len * d * v if self.count_lm_head else 0
        params = v * d + self.max_positions * d + 2 * d
        if kind == "params":
            return params
        return params * self.memory_bits / 8 + self.activation_bytes_floor()

    def activation_bytes_floor(self) -> float:
        """Activations independent of the blocks: hidden states at D and the logits (memory_seq_len x V)."""
        t = self.memory_seq_len
        return (t * self.embed_proj_dim + t * self.vocab_size) * self.memory_bits / 8

    def block_activation_bytes(self, e, f):
        """Peak live activations inside one layer at batch 1 (no KV cache): attention phase
        (residual, Q, K, V and the h x T x T scores) or FFN phase (residual, input, hidden F)."""
        t = self.memory_seq_len
        attention = 4 * t * e + (e // self.head_dim) * t * t
        ffn = 2 * t * e + t * f
        return np.maximum(attention, ffn) * self.memory_bits / 8

    # ---- population / architecture level ---------------------------------------------------------
    def batch(self, kind: str, e, f, l) -> np.ndarray:
        """Cost of every architecture in arrays (P, N) of E, F, L."""
        e, f, l = (np.asarray(x, dtype=np.int64) for x in (e, f, l))
        total = additive_total(KindCost(self, kind), e, f, l)
        if kind == "memory":
            total = total + self.block_activation_bytes(e, f).max(-1)
        return total

    def cost(self, kind: str, arch: Architecture) -> float:
        return float(self.batch(kind, *arch.arrays())[0])

    def params(self, arch: Architecture, shared: bool | None = None) -> int:
        model = self if shared is None or shared == self.shared else self.with_sharing(shared)
        return int(model.cost("params", arch))

    def embedding_params(self) -> int:
        return self.vocab_size * self.embed_proj_dim + self.max_positions * self.embed_proj_dim

    def non_embedding_params(self, arch: Architecture) -> int:
        """Decoder parameters (the LTS proxy): everything but token and position embeddings."""
        return self.params(arch) - self.embedding_params()

    def flops(self, arch: Architecture) -> float:
        return self.cost("flops", arch)

    def kv_cache_bytes(self, arch: Architecture) -> float:
        """The KV cache ``memory`` counts: every applied layer's keys and values at ``memory_kv_tokens``."""
        e, _, l = arch.arrays()
        return float((l * self.layer_kv_bytes(e)).sum())

    def memory_bytes(self, arch: Architecture) -> float:
        """Weights at ``memory_bits`` plus peak activations for one sequence of ``memory_seq_len`` tokens, plus
        the KV cache of generation at ``memory_kv_tokens`` (:meth:`kv_cache_bytes`; 0: a forward pass).

        What it counts: the weights (tied LM head once), the hidden states at D and the logits
        (:meth:`activation_bytes_floor`), plus the largest block's in-layer activations
        (:meth:`block_activation_bytes`).  Measured on CPU (``merino.memory.check_memory_model``:
        torch profiler memory events, fp32, batch 1, 128 tokens) the weights match exactly and the
        activation peak of our implementation is the logits phase, T (D + V), alone: the blocks'
        activations are freed before the LM head runs.  So this is an upper bound, above the
        measured peak by the largest block's term: +6-9 % of the total at the embedded default's scales.pretrain
        (V = 4096, D = 128), +1.1 % for the paper's Table 8 structures (V = 50257, D = 768).  With
        small vocabularies a layer's activations outgrow the logits and the peak moves into the blocks:
        scales.correlation (V = 512, T = 32) is still bounded (+2-5 %), but with a few dozen tokens
        this is no longer a bound, because our layers also hold the residual streams of the enclosing
        calls, both the FFN's hidden and ReLU outputs (2 T F) and flash attention's buffers, while CPU
        attention never materialises the h T^2 scores counted here."""
        return self.cost("memory", arch)

    def with_sharing(self, shared: bool) -> CostModel:
        return CostModel(**{**self.__dict__, "shared": shared})

    def summary(self, arch: Architecture) -> dict:
        """Every figure of Tables 3/5/8 for one architecture."""
        return {
            "params_shared": self.params(arch, shared=True),
            "params_unshared": self.params(arch, shared=False),
            "non_embedding_params": self.non_embedding_params(arch),
            "flops": self.flops(arch),
            "memory_bytes": self.memory_bytes(arch),
        }


def _check_model_kind(kind: str) -> None:
    if kind == "latency":
        raise ValueError(
            "latency is priced by a device's latency table (merino.latency.LatencyTable), not by "
            "CostModel; get the pricing with merino.cost.pricing(cost, budget, latency_tables)"
        )
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown cost kind {kind!r}; expected one of {COST_KINDS}")


# ---- pricing: what the searches constrain --------------------------------------------------------------
class KindCost:
    """One kind of a :class:`CostModel` behind the interface the searches use (a *pricing*).

    A pricing has ``kind``, ``additive`` (cost = constant + sum of block terms + sum of terms
    between neighbouring widths, which the exact solver needs), ``embed_proj_dim``,
    ``block_term(e, f, l)``, ``transition_term(e_in, e_out)``, ``constant_term()``,
    ``batch(e, f, l)`` (arrays (P, N) -> (P,)) and ``check_space(space)``.
    :class:`merino.latency.LatencyTable` is the other implementation."""

    def __init__(self, model: CostModel, kind: str):
        _check_model_kind(kind)
        self.model, self.kind = model, kind
        self.additive = kind != "memory"  # memory adds the largest block's activations, a max over blocks

    @property
    def embed_proj_dim(self) -> int:
        return self.model.embed_proj_dim

    def block_term(self, e, f, l):
        return self.model.block_term(self.kind, e, f, l)

    def transition_term(self, e_in, e_out):
        return self.model.transition_term(self.kind, e_in, e_out)

    def constant_term(self) -> float:
        return self.model.constant_term(self.kind)

    def batch(self, e, f, l) -> np.ndarray:
        return self.model.batch(self.kind, e, f, l)

    def check_space(self, space) -> None:
        """The analytic kinds price every architecture."""


def pricing(cost: CostModel, budget: Budget | str, latency=None):
    """The pricing a search constrains under ``budget`` (a :class:`Budget`, or the name of a CostModel kind).

    ``latency``: the latency table(s) a latency budget may refer to: one table, a mapping device ->
    table, or None.  A latency budget picks the table of its device; the table must have been measured
    under ``cost``'s model convention (embedding width, vocabulary, head width)."""
    if isinstance(budget, str):
        if budget == "latency":
            raise ValueError("a latency cost needs a Budget that names its device (e.g. 'latency50ms-cpu')")
        return KindCost(cost, budget)
    if budget.kind != "latency":
        return KindCost(cost, budget.kind)
    tables = latency_tables(latency)
    if budget.device not in tables:
        given = f"the tables given are for {sorted(tables)}" if tables else "no latency table was given"
        raise ValueError(
            f"budget {budget.label!r} needs the latency table of device {budget.device!r}, but "
            f"{given}; build it on that device with merino.latency.build_latency_table and pass it"
        )
    table = tables[budget.device]
    table.check_convention(cost)
    return table


def additive_total(price, e, f, l) -> np.ndarray:
    """constant + sum_i block_i + sum of the transitions D -> E_1 -> ... -> E_N -> D, for arrays (P, N)."""
    e, f, l = (np.asarray(x, dtype=np.int64) for x in (e, f, l))
    d = np.full((*e.shape[:-1], 1), price.embed_proj_dim, dtype=np.int64)
    widths = np.concatenate([d, e, d], axis=-1)
    total = price.constant_term() + price.block_term(e, f, l).sum(-1).astype(np.float64)
    return total + price.transition_term(widths[..., :-1], widths[..., 1:]).sum(-1)


def latency_tables(latency) -> dict:
    """``latency`` as a mapping device -> table: None, one table (keyed by its ``device``) or a mapping."""
    if latency is None:
        return {}
    return dict(latency) if isinstance(latency, Mapping) else {latency.device: latency}
