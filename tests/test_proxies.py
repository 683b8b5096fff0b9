"""Training-free proxies: NTK of a network whose Jacobian is known and TE-NAS's weights-only Jacobian,
DSS-Score on hand-checked models (TF-TAS's fused qkv and head), role (not shape) classification, and
decoder params equal to the cost model's count."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from merino.cost import CostModel
from merino.entropy import objective_score
from merino.model import MerinoConfig, MerinoForCausalLM
from merino.proxies import (
    ScoredMatrix,
    all_proxies,
    condition_number,
    decoder_params,
    dss_from_gradients,
    dss_score,
    merino_matrices,
    ntk,
    ntk_condition_number,
    proxy_batch,
    proxy_scorer,
)
from merino.space import Architecture


def merino_config(arch: Architecture, shared=True, vocab=97, d=64):
    return MerinoConfig.from_architecture(
        arch, vocab_size=vocab, embed_proj_dim=d, max_position_embeddings=32, head_dim=32, weight_sharing=shared
    )


ARCH = Architecture.from_dict({"E": [64, 96], "F": [128, 96], "L": [2, 1]})


@pytest.mark.parametrize("weights_only, bias_term", [(False, 1.0), (True, 0.0)])
def test_ntk_of_a_linear_model_is_the_gram_matrix_plus_the_bias_term(weights_only, bias_term):
    """f(x) = w.x + b: J_i = (x_i, 1) over (w, b), so Theta = X X^T + 1 exactly; over the weight only
    (TE-NAS), J_i = x_i and Theta = X X^T."""
    torch.manual_seed(0)
    x = torch.randn(5, 7)
    model = nn.Linear(7, 1)
    theta = ntk(model, x, output=lambda m, xb: m(xb).sum(), weights_only=weights_only)
    expected = x.double() @ x.double().T + bias_term
    torch.testing.assert_close(theta, expected, rtol=1e-5, atol=1e-5)
    eig = np.linalg.eigvalsh(expected.numpy())
    assert condition_number(theta) == pytest.approx(eig[-1] / eig[0], rel=1e-6)


def test_ntk_gathers_every_use_of_a_shared_weight():
    """g(x) = w.(w x) with w a 1x1 weight used twice: dg/dw = 2 w x, Theta_ij = 4 w^2 x_i x_j."""
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.5)
    x = torch.tensor([[1.0], [2.0], [-3.0]])
    theta = ntk(model, x, output=lambda m, xb: m(m(xb)).sum())
    torch.testing.assert_close(theta, 4 * 1.5**2 * (x.double() @ x.double().T))


def test_weights_only_ntk_is_te_nas_jacobian_of_the_weight_tensors():
    """TE-NAS (VITA-Group/TENAS, lib/procedures/ntk.py): backward of sample i's summed logits, then the
    gradients of the parameters with 'weight' in their name, concatenated; Theta = J J^T."""
    torch.manual_seed(0)
    model = MerinoForCausalLM(merino_config(ARCH, vocab=31, d=32)).eval()
    batch = torch.randint(0, 31, (4, 6), generator=torch.Generator().manual_seed(1))
    rows = []
    for i in range(len(batch)):
        model.zero_grad()
        model(input_ids=batch[i : i + 1]).logits.sum().backward()
        rows.append(
            torch.cat(
                [w.grad.flatten() for name, w in model.named_parameters() if "weight" in name and w.grad is not None]
            )
        )
    jac = torch.stack(rows).double()
    model.zero_grad()
    names = [name for name, _ in model.named_parameters() if "weight" in name]
    assert any(".ln_1." in n for n in names) and "model.wte.weight" in names  # LayerNorm gains and embeddings too
    assert jac.shape[1] == sum(p.numel() for n, p in model.named_parameters() if not n.endswith(".bias"))
    theta = ntk(model, batch)
    torch.testing.assert_close(theta, jac @ jac.T, rtol=1e-6, atol=1e-8)
    every = ntk(model, batch, weights_only=False)  # + the biases' Gram matrix, itself positive semi-definite
    assert not torch.allclose(every, theta) and torch.linalg.eigvalsh(every - theta)[0] > -1e-6 * every.norm()


def test_condition_number_of_known_spectra():
    assert condition_number(torch.diag(torch.tensor([1.0, 4.0, 2.0], dtype=torch.float64))) == pytest.approx(4.0)
    assert condition_number(torch.ones(3, 3, dtype=torch.float64)) == float("inf")  # rank one: singular


def test_ntk_condition_number_of_a_merino_model_is_seeded_and_averaged():
    config = merino_config(ARCH)
    batch = torch.randint(0, 97, (6, 12), generator=torch.Generator().manual_seed(0))
    a = ntk_condition_number(config, batch, inits=2, seed=3)
    b = ntk_condition_number(config, batch, inits=2, seed=3)
    assert a == b
    assert all(np.isfinite(k) and k >= 1 for k in a["ntk_condition_per_init"])
    assert a["ntk_condition"] == pytest.approx(np.mean(a["ntk_condition_per_init"]))
    assert ntk_condition_number(config, batch, inits=1, seed=4)["ntk_condition"] != a["ntk_condition_per_init"][0]


class _TwoLayerMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc_in = nn.Linear(3, 4, bias=False)
        self.fc_out = nn.Linear(4, 2, bias=False)

    def forward(self, x):
        return self.fc_out(torch.relu(self.fc_in(x)))


def test_dss_saliency_of_a_linear_relu_mlp_is_twice_its_output():
    """With |W| and an all-ones input, R = 1^T |W2| |W1| 1 and sum |dR/dW (.) W| equals R for each
    layer (synaptic flow is conserved), so the saliency is exactly 2 R."""
    torch.manual_seed(0)
    model = _TwoLayerMLP()
    w1, w2 = model.fc_in.weight.detach().abs().double(), model.fc_out.weight.detach().abs().double()
    r = float(torch.ones(2, dtype=torch.float64) @ w2 @ w1 @ torch.ones(3, dtype=torch.float64))
    got = dss_score(
        model,
        seq_len=1,
        matrices=lambda m: [
            ScoredMatrix("mlp", "fc_in", m.fc_in.weight),
            ScoredMatrix("mlp", "fc_out", m.fc_out.weight),
        ],
        output=lambda m, t: m(torch.ones(t, 3, dtype=torch.float64)).sum(),
    )
    assert got["dss_saliency"] == pytest.approx(2 * r, rel=1e-12) and got["dss_diversity"] == 0.0
    assert (model.fc_in.weight < 0).any(), "the scored model must be left untouched"


def test_dss_diversity_is_the_product_of_nuclear_norms():
    w = nn.Parameter(torch.tensor([[3.0, 0.0], [0.0, -4.0], [1.0, 1.0], [0.0, 2.0]]))
    w.grad = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    top, bottom = ScoredMatrix("msa", "q", w, (0, 2)), ScoredMatrix("msa", "k", w, (2, 4))
    # top: ||diag(1, 0)||_* = 1, ||diag(3, -4)||_* = 7; bottom: ||ones(2, 2)||_* = 2, ||[[1, 1], [0, 2]]||_* = sqrt(10)
    got = dss_from_gradients([top, bottom])
    assert got["dss_diversity"] == pytest.approx(1 * 7 + 2 * np.sqrt(10))
    with pytest.raises(ValueError, match="role"):
        dss_from_gradients([ScoredMatrix("embedding", "wte", w)])


def test_dss_classifies_by_role_not_shape():
    """E = F = 64: every matrix of a layer has a 64-wide shape, yet Q, K, V, O are attention and W1, W2 FFN."""
    arch = Architecture.from_dict({"E": [64, 64], "F": [64, 64], "L": [3, 1]})
    model = MerinoForCausalLM(merino_config(arch, shared=True))
    matrices = merino_matrices(model, fused_qkv=False, score_head=False)
    roles = [(m.role, m.name.rsplit(".", 1)[-1]) for m in matrices]
    per_layer = [
        ("msa", "qkv[q]"),
        ("msa", "qkv[k]"),
        ("msa", "qkv[v]"),
        ("msa", "out"),
        ("mlp", "fc_in"),
        ("mlp", "fc_out"),
    ]
    assert sorted(roles) == sorted(per_layer * 2)  # one shared layer per block, scored once
    shapes = {tuple(m.param.shape) if m.rows is None else (m.rows[1] - m.rows[0], m.param.shape[1]) for m in matrices}
    assert shapes == {(64, 64)}
    unshared = merino_matrices(MerinoForCausalLM(merino_config(arch, shared=False)), fused_qkv=False, score_head=False)
    assert len(unshared) == 6 * 4
    # as TF-TAS scores them: the fused 3E x E projection as one matrix, and the head by saliency
    published = [(m.role, m.name.rsplit(".", 1)[-1]) for m in merino_matrices(model)]
    assert sorted(published) == sorted(
        [("msa", "qkv"), ("msa", "out"), ("mlp", "fc_in"), ("mlp", "fc_out")] * 2 + [("head", "lm_head")]
    )


def _probe_gradients(model, seq_len):
    """What dss_score differentiates, by hand: a float64 copy with |weights|, the all-ones input, backward
    of the summed logits; returns the copy (its ``.grad`` hold dR/dW) and the final hidden states."""
    probe = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in probe.parameters():
            p.abs_()
    out = probe(
        inputs_embeds=torch.ones(1, seq_len, probe.config.embed_proj_dim, dtype=torch.float64),
        output_hidden_states=True,
    )
    out.logits.sum().backward()
    return probe, out.hidden_states[-1].detach()


def _nuclear(t):
    return float(torch.linalg.matrix_norm(t.detach(), "nuc"))


def test_fused_qkv_diversity_is_the_nuclear_norm_product_of_the_fused_matrix():
    """||dR/dW_qkv||_* ||W_qkv||_* + ||dR/dW_O||_* ||W_O||_* per distinct layer; splitting Q, K, V differs."""
    torch.manual_seed(0)
    model = MerinoForCausalLM(merino_config(ARCH))
    fused = dss_score(model, seq_len=8, fused_qkv=True, score_head=False)
    split = dss_score(model, seq_len=8, fused_qkv=False, score_head=False)
    probe, _ = _probe_gradients(model, 8)
    layers = [layer for block in probe.model.blocks for layer in block.layers]  # shared: one per block
    expected = sum(
        _nuclear(lin.weight.grad) * _nuclear(lin.weight) for layer in layers for lin in (layer.attn.qkv, layer.attn.out)
    )
    assert fused["dss_diversity"] == pytest.approx(expected, rel=1e-10)
    assert fused["dss_diversity"] != pytest.approx(split["dss_diversity"], rel=1e-3)
    assert fused["dss_saliency"] == split["dss_saliency"] and fused["dss_head_saliency"] == 0.0


def test_score_head_adds_the_lm_heads_saliency():
    """R = sum_t sum_v (W h_t)_v, so dR/dW[v, d] = sum_t h_t[d]: the head's saliency is sum_vd |W_vd| |sum_t h_td|."""
    torch.manual_seed(0)
    model = MerinoForCausalLM(merino_config(ARCH))
    with_head, without = dss_score(model, seq_len=8), dss_score(model, seq_len=8, score_head=False)
    probe, hidden = _probe_gradients(model, 8)
    head = float((probe.lm_head.weight.detach() @ hidden[0].sum(0).abs()).sum())  # |W| = W in the probe
    assert with_head["dss_head_saliency"] == pytest.approx(head, rel=1e-10)
    assert with_head["dss_saliency"] == pytest.approx(without["dss_saliency"] + head, rel=1e-10)
    assert with_head["dss"] == pytest.approx(without["dss"] + head, rel=1e-10)
    assert with_head["dss_diversity"] == without["dss_diversity"]


def test_dss_score_of_a_merino_model_is_positive_and_deterministic():
    torch.manual_seed(0)
    model = MerinoForCausalLM(merino_config(ARCH))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a, b = dss_score(model, seq_len=8), dss_score(model, seq_len=8)
    assert a == b and a["dss_diversity"] > 0 and a["dss_saliency"] > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize(
    "arch", [ARCH, Architecture.from_dict({"E": [64, 64, 128], "F": [64, 256, 128], "L": [1, 3, 2]})]
)
def test_decoder_params_equal_the_cost_models_non_embedding_count(arch, shared):
    model = MerinoForCausalLM(merino_config(arch, shared=shared))
    cost = CostModel.from_config(
        {"vocab_size": 97, "embed_proj_dim": 64, "max_positions": 32, "head_dim": 32, "weight_sharing": shared},
        {"flops_seq_len": 32, "count_lm_head": False, "memory_bits": 32, "memory_seq_len": 32},
    )
    assert decoder_params(model) == cost.non_embedding_params(arch)
    assert decoder_params(model) == sum(p.numel() for p in model.parameters()) - (97 + 32) * 64


@pytest.mark.parametrize("published", [True, False], ids=["as-published", "all-params-split-qkv-no-head"])
def test_proxy_scorers_are_the_correlation_studys_proxies(published):
    """The searches of Fig. 5 rank by exactly the values the correlation study correlates."""
    batch = torch.randint(0, 97, (4, 8), generator=torch.Generator().manual_seed(0))
    make = lambda arch: merino_config(arch)  # noqa: E731
    kw = dict(ntk_inits=2, dss_seq_len=8, seed=5, ntk_weights_only=published, fused_qkv=published, score_head=published)
    ntk_score, dss, params = (proxy_scorer(n, make, batch, **kw) for n in ("ntk", "dss", "decoder_params"))
    assert ntk_score(ARCH) == -ntk_condition_number(make(ARCH), batch, 2, 5, weights_only=published)["ntk_condition"]
    torch.manual_seed(5)
    expected = dss_score(MerinoForCausalLM(make(ARCH)), 8, fused_qkv=published, score_head=published)["dss"]
    assert dss(ARCH) == expected
    assert params(ARCH) == decoder_params(MerinoForCausalLM(make(ARCH)))
    with pytest.raises(ValueError, match="unknown proxy objective 'snip'"):
        proxy_scorer("snip", make, batch, **kw)


def test_the_study_scores_entropy_in_the_global_form_and_by_eq15(tiny_table):
    """all_proxies: the global form and Eq. 15 (objective eq15, per-block penalty) under the same table."""
    arch = Architecture.from_dict({"E": [64, 128], "F": [128, 256], "L": [2, 1]})
    config = merino_config(arch)
    batch = torch.randint(0, 97, (2, 8), generator=torch.Generator().manual_seed(0))
    result = all_proxies(arch, config, tiny_table, batch, ntk_inits=1, dss_seq_len=8, seed=0)
    assert result["scores"]["entropy"] == objective_score(arch, tiny_table, "entropy")
    assert (
        result["scores"]["entropy_eq15"] == result["raw"]["entropy_eq15"] == objective_score(arch, tiny_table, "eq15")
    )
    assert result["scores"]["entropy_eq15"] != result["scores"]["entropy"]


def test_proxy_batch_is_training_sequences_fixed_by_the_seed(tmp_path):
    from merino.corpus import Corpus
    from merino.token_cache import build_token_cache
    from merino.tokenizer import train_tokenizer

    corpus = Corpus(
        "test", {"train": [f"document {i} " * 40 for i in range(30)], "validation": ["v " * 50], "test": ["t " * 50]}
    )
    build_token_cache(corpus, train_tokenizer(corpus, vocab_size=300), tmp_path)
    a, b = proxy_batch(tmp_path, 4, 16, seed=1), proxy_batch(tmp_path, 4, 16, seed=1)
    assert a.shape == (4, 16) and torch.equal(a, b)
    assert not torch.equal(a, proxy_batch(tmp_path, 4, 16, seed=2))
