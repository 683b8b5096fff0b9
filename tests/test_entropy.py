import math

import numpy as np
import pytest
import torch

from merino.entropy import (
    EntropyConstants,
    EntropyLookupTable,
    architecture_entropy,
    effectiveness,
    expected_matrix_entropy,
    lookup_error,
    matrix_entropy,
    objective_score,
)
from merino.paper import load_reference, table1_models
from merino.search import EntropyObjective
from merino.space import Architecture, Block


def _with_singular_values(s, rows, cols, seed=0):
    gen = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(rows, rows, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(cols, cols, generator=gen, dtype=torch.float64))
    sigma = torch.zeros(rows, cols, dtype=torch.float64)
    sigma[range(len(s)), range(len(s))] = torch.tensor(s, dtype=torch.float64)
    return u @ sigma @ v.T


@pytest.mark.parametrize("rows, cols", [(5, 8), (8, 5), (6, 6)])
def test_eq7_on_known_singular_values(rows, cols):
    s = [3.0, 1.0, 0.5, 0.1, 0.0][: min(rows, cols)]
    w = _with_singular_values(s, rows, cols)
    eps = 0.5
    expected = sum(math.log(1 + x * x / eps**2) for x in s)
    assert matrix_entropy(w, eps) == pytest.approx(expected, rel=1e-10)
    assert matrix_entropy(w, eps, log_base=2) == pytest.approx(expected / math.log(2), rel=1e-10)


def test_eq7_orthogonal_matrix():
    q, _ = torch.linalg.qr(torch.randn(16, 16, dtype=torch.float64))
    assert matrix_entropy(q, 1.0) == pytest.approx(16 * math.log(2))


@pytest.mark.slow
def test_expected_entropy_is_deterministic_and_transpose_invariant():
    c = EntropyConstants(draws=2)
    a = expected_matrix_entropy(64, 256, c)
    assert a == expected_matrix_entropy(256, 64, c) == expected_matrix_entropy(64, 256, c)
    assert a != expected_matrix_entropy(64, 256, EntropyConstants(draws=2, seed=1))


def test_expected_entropy_matches_marchenko_pastur_limit():
    # s^2 of an m x n (m <= n) matrix with std sigma follow n sigma^2 MP(m/n); with eps = sigma,
    # H / m -> E_MP[log(1 + n x)].  Check against a numerical integral of the MP density.
    m, n = 128, 512
    c = EntropyConstants(init_std=0.02, epsilon=0.02, draws=4)
    ratio = m / n
    lo, hi = (1 - math.sqrt(ratio)) ** 2, (1 + math.sqrt(ratio)) ** 2
    x = np.linspace(lo, hi, 200001)[1:-1]
    density = np.sqrt((hi - x) * (x - lo)) / (2 * math.pi * ratio * x)
    limit = np.trapezoid(density * np.log1p(n * x), x) / np.trapezoid(density, x)
    assert expected_matrix_entropy(m, n, c) / m == pytest.approx(limit, rel=2e-3)


def test_table1_gamma_from_the_formula():
    ref = load_reference()["table1_wide_vs_deep"]
    models = table1_models(load_reference())
    beta = ref["beta"]
    wide = float(effectiveness(models["wide"].n_layers, models["wide"].widths[0], beta))
    deep = float(effectiveness(models["deep"].n_layers, models["deep"].widths[0], beta))
    assert round(wide, 3) == dict(zip(ref["columns"], ref["wide"]))["effective_gamma"]
    assert deep == dict(zip(ref["columns"], ref["deep"]))["effective_gamma"]


def test_table1_ordering_flips_with_gamma():
    """Raw entropy favours the deep model; with gamma the wide one (lower perplexity in the paper) wins."""
    table = EntropyLookupTable(EntropyConstants(draws=1))
    models = table1_models(load_reference())
    wide, deep = (architecture_entropy(models[k], table) for k in ("wide", "deep"))
    assert deep.entropy > wide.entropy
    assert wide.entropy_with_gamma > deep.entropy_with_gamma


def test_eq12_to_14_composition():
    c = EntropyConstants(draws=1, alpha_mhsa=0.5, alpha_ffn=1.0)
    table = EntropyLookupTable(c)
    arch = Architecture((Block(128, 256, 2), Block(192, 128, 1)))
    h = architecture_entropy(arch, table)
    m = lambda r, k: table.matrix(r, k)  # noqa: E731
    mhsa = 2 * (6 * m(128, 64) + m(128, 128)) + (9 * m(192, 64) + m(192, 192))
    ffn = 2 * 2 * m(128, 256) + 2 * m(192, 128)
    assert h.mhsa == pytest.approx(mhsa) and h.ffn == pytest.approx(ffn)
    assert h.weighted_entropy == pytest.approx(0.5 * mhsa + ffn)
    gamma = c.beta * 3 / math.log2(128)
    assert h.gamma == pytest.approx(gamma)
    assert h.objective == pytest.approx((0.5 * mhsa + ffn) * math.exp(-c.gamma_strength * gamma))


@pytest.mark.parametrize("alpha", [True, False])
def test_eq15_per_block_objectives_by_hand(alpha):
    """Eq. 15 as printed, per block j and module: L_j [a_M (1 - b L_j / log2 E_j) H_MHSA(E_j) +
    a_F (1 - b L_j / log2 F_j) H_FFN(E_j, F_j)]; and the exponential form exp(-k b L_j / log2 x)."""
    c = EntropyConstants(draws=1, alpha_mhsa=0.5, alpha_ffn=1.0, beta=0.25, gamma_strength=3.0)
    table = EntropyLookupTable(c)
    arch = Architecture((Block(128, 256, 2), Block(192, 192, 3)))
    m = lambda r, k: table.matrix(r, k)  # noqa: E731
    hm = {128: 6 * m(128, 64) + m(128, 128), 192: 9 * m(192, 64) + m(192, 192)}
    hf = {(128, 256): 2 * m(128, 256), (192, 192): 2 * m(192, 192)}
    am, af = (0.5, 1.0) if alpha else (1.0, 1.0)
    lg = math.log2(192)
    linear = 2 * (am * (1 - 0.25 * 2 / 7) * hm[128] + af * (1 - 0.25 * 2 / 8) * hf[128, 256]) + 3 * (
        am * (1 - 0.25 * 3 / lg) * hm[192] + af * (1 - 0.25 * 3 / lg) * hf[192, 192]
    )
    ex = lambda l, x: math.exp(-3.0 * 0.25 * l / math.log2(x))  # noqa: E731
    exponential = 2 * (am * ex(2, 128) * hm[128] + af * ex(2, 256) * hf[128, 256]) + 3 * (
        am * ex(3, 192) * hm[192] + af * ex(3, 192) * hf[192, 192]
    )
    name = "eq15" if alpha else "eq15_gamma"
    assert objective_score(arch, table, name) == pytest.approx(linear, rel=1e-12)
    if alpha:
        assert objective_score(arch, table, "eq15_exp") == pytest.approx(exponential, rel=1e-12)
    assert objective_score(arch, table, "eq15_plain") == pytest.approx(architecture_entropy(arch, table).entropy)
    # the search's vectorised objective agrees on a space holding the architecture (ratio axis: F = R E)
    from merino.space import SearchSpace

    space = SearchSpace(n_blocks=2, e_min=64, e_max=192, e_step=64, ffn_ratios=(1, 2), depths=(1, 2, 3))
    genes = space.encode(arch)[None]
    assert EntropyObjective.build(name, space, table)(genes)[0] == pytest.approx(linear, rel=1e-12)
    # a different log base for Eq. 15's log changes only beta's effective size: beta ln(base) is what matters
    c2 = EntropyConstants(draws=1, alpha_mhsa=0.5, beta=0.25 * math.log(2) / math.log(math.e), penalty_log_base=math.e)
    assert objective_score(arch, EntropyLookupTable(c2, table.entries), name) == pytest.approx(linear, rel=1e-12)


def test_lookup_table_save_load_and_constant_check(tmp_path, tiny_space, tiny_table):
    path = tmp_path / "lut.json"
    tiny_table.save(path)
    loaded = EntropyLookupTable.load(path, tiny_table.constants)
    assert loaded.entries == tiny_table.entries
    assert set(loaded.entries) >= {tuple(sorted(s)) for s in tiny_space.matrix_shapes()}
    with pytest.raises(ValueError, match="epsilon"):
        EntropyLookupTable.load(path, EntropyConstants(draws=2, epsilon=0.1))


@pytest.mark.slow
def test_lookup_matches_fresh_weights(tiny_space, tiny_table, rng):
    archs = [tiny_space.to_architecture(g) for g in tiny_space.sample(rng, 8)]
    rows = lookup_error(archs, tiny_table, draws=2, seed=3)
    errors = np.abs([r["relative_error"] for r in rows])
    assert errors.max() < 0.01 and errors.mean() < 0.005
