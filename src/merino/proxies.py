"""Training-free proxies the paper compares entropy against (paper Sec. 4.1, Fig. 3).

Every proxy is oriented so that higher means "predicted better" (the study correlates it with
-perplexity):

* **NTK condition number** (TE-NAS; Chen, Gong & Wang, ICLR 2021, Sec. 3.1): the empirical neural
  tangent kernel Theta = J J^T of one real batch, J_i = d(sum of the logits of sample i)/d(theta),
  and its condition number kappa = lambda_max / lambda_min, averaged over seeded re-initialisations.
  A small kappa means trainable, so the score is -kappa.  theta: as TE-NAS's code collects it
  (VITA-Group/TENAS, lib/procedures/ntk.py, ``if 'weight' in name``), every parameter whose name
  contains "weight" (linear matrices, embeddings, LayerNorm gains; no biases); ``ntk_weights_only:
  false`` takes every parameter.
* **DSS-Score** (TF-TAS; Zhou et al., CVPR 2022, Eqs. 5-8): all weights made absolute, an all-ones
  input, one backward pass of the summed output R.  Synaptic diversity of the attention
  projections, sum_m ||dR/dW_m||_nuc * ||W_m||_nuc, plus synaptic saliency of the feed-forward
  layers, sum_n sum |dR/dW_n (.) W_n|.  As TF-TAS's code scores them (decemberzhou/TF_TAS,
  lib/training_free/indicators/dss.py with the ``--change_qkv`` space of search_autoformer.sh):
  the fused Q, K, V projection is ONE matrix of the diversity term (``fused_qkv: false``: Q, K and V
  separately), O another, and the classification head is scored by saliency (``score_head``: here
  the LM head; TF-TAS's get_layer_metric_array_dss lists its head twice, which we do not copy).
  Embeddings and the block projections are not scored (TF-TAS has no width projections, and its
  patch-embedding branch is never reached: only Linear layers are visited).
* **Decoder params** (LTS; Javaheripi et al., NeurIPS 2022): parameters outside the token and
  position embeddings.
* **Entropy** (ours): from the lookup table, Eq. 14 alpha-weighted times the global penalty exp(-kappa gamma)
  (objective ``entropy``, ``merino.entropy.architecture_entropy``; not Eq. 15's per-block form, docs/deviations.md).

The first three also drive searches (:func:`proxy_scorer`, paper Fig. 5 and Table 4): the evolutionary
search of Algorithm 1 with the proxy in place of entropy, as TE-NAS, TF-TAS and LTS rank architectures.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .entropy import EntropyLookupTable, architecture_entropy, objective_score
from .model import MerinoAttention, MerinoConfig, MerinoForCausalLM, MerinoLayer
from .search import PROXY_OBJECTIVES
from .space import Architecture
from .token_cache import PackedDataset, batch_indices


# ---- NTK condition number (TE-NAS) ----------------------------------------------------------------------
def _summed_logits(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    return model(input_ids=batch).logits.sum()


def ntk(
    model: nn.Module,
    batch: torch.Tensor,
    output: Callable[[nn.Module, torch.Tensor], torch.Tensor] = _summed_logits,
    *,
    weights_only: bool = True,
) -> torch.Tensor:
    """Empirical NTK (B, B) in float64: Theta_ij = <J_i, J_j>, J_i = d output(sample i) / d theta
    over the trainable parameters whose name contains "weight" (TE-NAS's selection: no biases) or,
    with ``weights_only=False``, over every trainable parameter.  A shared or tied tensor counts once,
    its gradient gathering every use."""
    params = [p for name, p in model.named_parameters() if p.requires_grad and (not weights_only or "weight" in name)]
    if not params:
        raise ValueError(
            f"{type(model).__name__} has no trainable parameter "
            f"{'named *weight* ' if weights_only else ''}to differentiate"
        )
    rows = []
    for i in range(batch.shape[0]):
        grads = torch.autograd.grad(output(model, batch[i : i + 1]), params, allow_unused=True)
        rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)]))
    jac = torch.stack(rows)  # (B, P)
    gram = torch.zeros(jac.shape[0], jac.shape[0], dtype=torch.float64, device=jac.device)
    for start in range(0, jac.shape[1], 1 << 22):  # float64 in column chunks: exact without a float64 copy of J
        part = jac[:, start : start + (1 << 22)].double()
        gram += part @ part.T
    return gram


def condition_number(gram: torch.Tensor) -> float:
    """lambda_max / lambda_min of a symmetric positive semi-definite matrix (inf when singular)."""
    eig = torch.linalg.eigvalsh(gram)
    return math.inf if eig[0] <= 0 else float(eig[-1] / eig[0])


def ntk_condition_number(
    config: MerinoConfig, batch: torch.Tensor, inits: int, seed: int, *, weights_only: bool = True
) -> dict:
    """TE-NAS kappa of a freshly initialised model on ``batch`` (B, T), averaged over ``inits`` seeds
    (``weights_only``: see :func:`ntk`)."""
    kappas = []
    for k in range(inits):
        torch.manual_seed(seed * 1_000_003 + k)
        model = MerinoForCausalLM(config).to(batch.device).eval()
        kappas.append(condition_number(ntk(model, batch, weights_only=weights_only)))
    return {"ntk_condition": float(np.mean(kappas)), "ntk_condition_per_init": kappas}


# ---- DSS-Score (TF-TAS) ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoredMatrix:
    """One weight matrix DSS scores: ``role`` "msa" (diversity), "mlp" (saliency) or "head" (saliency, the
    output head as TF-TAS scores its classifier); ``rows`` picks a matrix out of a fused parameter (Q, K
    or V of the fused projection when they are scored separately)."""

    role: str
    name: str
    param: nn.Parameter
    rows: tuple[int, int] | None = None

    def weight_and_grad(self) -> tuple[torch.Tensor, torch.Tensor]:
        w, g = self.param.detach(), self.param.grad
        return (w, g) if self.rows is None else (w[self.rows[0] : self.rows[1]], g[self.rows[0] : self.rows[1]])


def merino_matrices(model: nn.Module, *, fused_qkv: bool = True, score_head: bool = True) -> list[ScoredMatrix]:
    """The attention and feed-forward matrices of a MeRino model, classified by the module they belong
    to (never by shape: with E = F an FFN matrix has the shape of an attention one), and its LM head.

    ``fused_qkv``: the fused Q, K, V projection (3E x E) is one diversity matrix, as TF-TAS scores its
    qkv layer; else Q, K and V are three.  ``score_head``: the LM head's saliency is added, as TF-TAS
    adds its classifier's.  Block projections and embeddings are not scored, as in TF-TAS."""
    out = []
    for name, module in model.named_modules():
        if isinstance(module, MerinoAttention):
            if fused_qkv:
                out.append(ScoredMatrix("msa", f"{name}.qkv", module.qkv.weight))
            else:
                e = module.out.in_features
                for k, part in enumerate("qkv"):
                    out.append(ScoredMatrix("msa", f"{name}.qkv[{part}]", module.qkv.weight, (k * e, (k + 1) * e)))
            out.append(ScoredMatrix("msa", f"{name}.out", module.out.weight))
        elif isinstance(module, MerinoLayer):
            out.append(ScoredMatrix("mlp", f"{name}.fc_in", module.fc_in.weight))
            out.append(ScoredMatrix("mlp", f"{name}.fc_out", module.fc_out.weight))
    if score_head:
        out.append(ScoredMatrix("head", "lm_head", model.lm_head.weight))
    return out


def dss_from_gradients(matrices: Iterable[ScoredMatrix]) -> dict:
    """TF-TAS Eqs. 6-8 from weights whose ``.grad`` holds dR/dW: diversity (MSA) + saliency (MLP and
    head; ``dss_head_saliency`` is the head's part of ``dss_saliency``)."""
    diversity = saliency = head = 0.0
    for m in matrices:
        w, g = m.weight_and_grad()
        if m.role == "msa":
            diversity += float(torch.linalg.matrix_norm(g, "nuc") * torch.linalg.matrix_norm(w, "nuc"))
        elif m.role in ("mlp", "head"):
            value = float((g * w).abs().sum())
            saliency += value
            head += value if m.role == "head" else 0.0
        else:
            raise ValueError(f"unknown DSS role {m.role!r} for {m.name}; expected 'msa', 'mlp' or 'head'")
    return {
        "dss_diversity": diversity,
        "dss_saliency": saliency,
        "dss_head_saliency": head,
        "dss": diversity + saliency,
    }


def _ones_summed_logits(model: nn.Module, seq_len: int) -> torch.Tensor:
    d = model.config.embed_proj_dim
    ones = torch.ones(1, seq_len, d, dtype=torch.float64, device=next(model.parameters()).device)
    return model(inputs_embeds=ones).logits.sum()


def dss_score(
    model: nn.Module,
    seq_len: int,
    matrices: Callable[[nn.Module], list[ScoredMatrix]] | None = None,
    output: Callable[[nn.Module, int], torch.Tensor] = _ones_summed_logits,
    *,
    fused_qkv: bool = True,
    score_head: bool = True,
) -> dict:
    """DSS-Score of ``model`` (left untouched): a float64 copy with |weights|, all-ones input of
    ``seq_len`` positions, backward of the summed output.  ``matrices`` picks the scored matrices
    (default: :func:`merino_matrices` with ``fused_qkv`` and ``score_head``)."""
    if matrices is None:

        def matrices(m: nn.Module) -> list[ScoredMatrix]:
            return merino_matrices(m, fused_qkv=fused_qkv, score_head=score_head)

    probe = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in probe.parameters():
            p.abs_()
    probe.zero_grad(set_to_none=True)
    output(probe, seq_len).backward()
    return dss_from_gradients(matrices(probe))


# ---- Decoder params (LTS) -------------------------------------------------------------------------------
def decoder_params(model: MerinoForCausalLM) -> int:
    """Parameters outside the token and position embeddings (the tied LM head is the token embedding)."""
    embeddings = {id(model.model.wte.weight), id(model.model.wpe.weight)}
    return sum(p.numel() for p in model.parameters() if id(p) not in embeddings)


# ---- proxies as search objectives (Fig. 5, Table 4) -------------------------------------------------------
def proxy_batch(
    tokens_dir, batch_size: int, seq_len: int, seed: int, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """The real batch (B, T) the NTK is computed on: training sequences fixed by ``seed``."""
    data = PackedDataset(tokens_dir, "train", seq_len)
    indices = batch_indices(len(data), batch_size, 0, seed)
    return torch.stack([data[int(k)] for k in indices])[:, :-1].to(device)


def proxy_scorer(
    name: str,
    make_config: Callable[[Architecture], MerinoConfig],
    batch: torch.Tensor,
    *,
    ntk_inits: int,
    dss_seq_len: int,
    seed: int,
    ntk_weights_only: bool = True,
    fused_qkv: bool = True,
    score_head: bool = True,
) -> Callable[[Architecture], float]:
    """Architecture -> score of one proxy, higher is better (as in :func:`all_proxies`): -kappa of the NTK
    (TE-NAS), DSS-Score (TF-TAS) or decoder params (LTS).  ``make_config`` gives an architecture's model
    config; every architecture starts from the same seeds.  ``ntk_weights_only``, ``fused_qkv`` and
    ``score_head``: see :func:`ntk` and :func:`merino_matrices` (defaults: TE-NAS and TF-TAS as published)."""
    if name == "ntk":
        return lambda arch: (
            -ntk_condition_number(make_config(arch), batch, ntk_inits, seed, weights_only=ntk_weights_only)[
                "ntk_condition"
            ]
        )
    if name == "dss":

        def dss(arch: Architecture) -> float:
            torch.manual_seed(seed)
            return dss_score(
                MerinoForCausalLM(make_config(arch)).to(batch.device),
                dss_seq_len,
                fused_qkv=fused_qkv,
                score_head=score_head,
            )["dss"]

        return dss
    if name == "decoder_params":

        def params(arch: Architecture) -> float:
            with torch.device("meta"):  # shapes only: no weights are drawn
                return float(decoder_params(MerinoForCausalLM(make_config(arch))))

        return params
    raise ValueError(f"unknown proxy objective {name!r}; expected one of {PROXY_OBJECTIVES}")


# ---- all four ----------------------------------------------------------------------------------------
def all_proxies(
    arch: Architecture,
    config: MerinoConfig,
    table: EntropyLookupTable,
    batch: torch.Tensor,
    *,
    ntk_inits: int,
    dss_seq_len: int,
    seed: int,
    ntk_weights_only: bool = True,
    fused_qkv: bool = True,
    score_head: bool = True,
) -> dict:
    """Every proxy of one architecture, raw values and scores oriented so that higher is better
    (``ntk_weights_only``, ``fused_qkv``, ``score_head``: see :func:`proxy_scorer`).  Entropy twice: the global
    form (``entropy``, H exp(-kappa gamma) with Eq. 11's gamma) and Eq. 15 as published (``entropy_eq15``), both
    under the table's constants."""
    torch.manual_seed(seed)
    model = MerinoForCausalLM(config).to(batch.device)
    h = architecture_entropy(arch, table)
    kappa = ntk_condition_number(config, batch, ntk_inits, seed, weights_only=ntk_weights_only)
    dss = dss_score(model, dss_seq_len, fused_qkv=fused_qkv, score_head=score_head)
    raw = {
        **kappa,
        **dss,
        "decoder_params": decoder_params(model),
        **{f"entropy_{k}": v for k, v in h.to_dict().items()},
        "entropy_eq15": objective_score(arch, table, "eq15"),
    }
    scores = {
        "entropy": h.objective,
        "entropy_eq15": raw["entropy_eq15"],
        "ntk": -kappa["ntk_condition"],
        "dss": dss["dss"],
        "decoder_params": float(raw["decoder_params"]),
    }
    return {"scores": scores, "raw": raw}
