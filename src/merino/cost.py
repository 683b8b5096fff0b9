"""Compute cost of a MeRino architecture: parameters, FLOPs and memory (paper Tables 3, 5, 8).

The model (paper Fig. 4): token embedding V x D and learned positions P x D (D = embedding
projection dim, 768 in the paper), a linear projection (with bias) into every block whose
width differs from the width before it and one back to D after the last block, pre-LayerNorm
GPT layers (attention Q, K, V, O with biases; FFN E -> F -> E with ReLU, Eq. 5; two
LayerNorms), a final LayerNorm of width D, and an LM head tied to the token embedding.
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
from dataclasses import dataclass

import numpy as np

from .space import Architecture

COST_KINDS = ("flops", "params", "memory")
_UNITS = {
    "flops": {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12},
    "params": {"K": 1e3, "M": 1e6, "G": 1e9},
    "memory": {"KB": 2**10, "MB": 2**20, "GB": 2**30},
}
_BUDGET_RE = re.compile(r"^(flops|params|memory)(\d+(?:\.\d+)?)([A-Z]+)$")


@dataclass(frozen=True)
class Budget:
    """A ComputeCost budget such as ``flops60G``, ``params50M`` or ``memory64MB`` (Eq. 15 constraint)."""

    kind: str
    value: float
    label: str

    @classmethod
    def parse(cls, label: str) -> "Budget":
        m = _BUDGET_RE.match(label)
        if not m or m.group(3) not in _UNITS[m.group(1)]:
            raise ValueError(
                f"budget {label!r} is not of the form <kind><number><unit> with kind in {COST_KINDS} and unit in "
                f"{ {k: list(v) for k, v in _UNITS.items()} } (e.g. 'flops60G', 'params50M', 'memory64MB')"
            )
        kind, number, unit = m.groups()
        return cls(kind, float(number) * _UNITS[kind][unit], label)


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

    @classmethod
    def from_config(cls, model: dict, cost: dict, **overrides) -> "CostModel":
        """From config sections ``model`` and ``cost``."""
        args = dict(
            vocab_size=model["vocab_size"], embed_proj_dim=model["embed_proj_dim"],
            max_positions=model["max_positions"], head_dim=model["head_dim"], shared=model["weight_sharing"],
            seq_len=cost["flops_seq_len"], count_lm_head=cost["count_lm_head"], memory_bits=cost["memory_bits"],
            memory_seq_len=cost["memory_seq_len"],
        )
        args.update(overrides)
        return cls(**args)

    # ---- per-layer / per-block terms (broadcast over arrays) -------------------------------------
    @staticmethod
    def layer_params(e, f):
        """One pre-LN layer: attention 4E^2+4E, FFN 2EF+F+E, two LayerNorms 4E."""
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

    def block_term(self, kind: str, e, f, l):
        """Cost of one block that does not depend on its neighbours (``memory``: weight bytes only)."""
        if kind == "flops":
            return l * self.layer_flops(e, f)
        params = self.layer_params(e, f) * (1 if self.shared else l)
        if kind == "params":
            return params
        if kind == "memory":
            return params * self.memory_bits / 8
        raise ValueError(f"unknown cost kind {kind!r}; expected one of {COST_KINDS}")

    def transition_term(self, kind: str, e_in, e_out):
        """Cost of the projection between two consecutive widths (D at both ends of the model)."""
        if kind == "flops":
            return self.projection_flops(e_in, e_out)
        params = self.projection_params(e_in, e_out)
        return params if kind == "params" else params * self.memory_bits / 8

    def constant_term(self, kind: str) -> float:
        """Cost that no architecture choice changes: embeddings, final LayerNorm, LM head."""
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
        d = np.full(e.shape[:-1] + (1,), self.embed_proj_dim, dtype=np.int64)
        widths = np.concatenate([d, e, d], axis=-1)
        total = self.constant_term(kind) + self.block_term(kind, e, f, l).sum(-1).astype(np.float64)
        total = total + self.transition_term(kind, widths[..., :-1], widths[..., 1:]).sum(-1)
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

    def memory_bytes(self, arch: Architecture) -> float:
        """Weights at ``memory_bits`` plus peak activations for one sequence of ``memory_seq_len`` tokens."""
        return self.cost("memory", arch)

    def with_sharing(self, shared: bool) -> "CostModel":
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
