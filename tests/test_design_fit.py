"""The design fit (merino.design_fit): spectra give the lookup table's entropies at every scale, and the fit's
rows are exact optima with Table 8's structure scored under the same constants."""

from dataclasses import replace

import numpy as np
import pytest

from merino.cost import Budget, CostModel
from merino.design_fit import (
    ConstantSet,
    best_set,
    candidate_sets,
    fit,
    scaled_table,
    shapes_needed,
    spectra,
    summarise,
)
from merino.entropy import EntropyConstants, expected_matrix_entropy, objective_score
from merino.paper import load_reference, paper_structures
from merino.search import EntropyObjective, exact_search
from merino.space import SearchSpace


def test_a_scale_from_spectra_equals_the_lookup_tables_entropy():
    shapes = [(64, 64), (64, 256), (128, 96)]
    eigen = spectra(shapes, seed=3, draws=3)
    for scale in (0.5, 1.0, 4.0):
        c = EntropyConstants(init_std=0.02, epsilon=0.02 / scale, draws=3, max_draws=3, seed=3, log_base=2.0)
        table = scaled_table(eigen, c)
        for m, n in shapes:  # the same seeded draws: Cholesky log det on one side, eigenvalue sums on the other
            assert table.matrix(m, n) == pytest.approx(expected_matrix_entropy(m, n, c), rel=1e-9)


def test_candidate_sets_cover_the_grid():
    grid = {
        "sigma_over_epsilon": [1, 2],
        "alpha_mhsa": [0.5],
        "beta": [0.0625, 1.0],
        "exp_forms": ["eq15_exp"],
        "gamma_strength": [8, 16, 32],
    }
    sets = candidate_sets(grid, 0.0625)
    assert len(sets) == 2 * 1 * (2 + 3) and len({s.name for s in sets}) == len(sets)
    assert {s.objective for s in sets} == {"eq15", "eq15_exp"}


@pytest.fixture(scope="module")
def paper_fit():
    """Three constant sets on the paper's ratio space, one draw per shape (seconds)."""
    reference = load_reference()
    space = SearchSpace.from_config(
        {
            "n_blocks": 4,
            "embed_dim": {"min": 64, "max": 1024, "step": 64},
            "depths": [1, 2, 3, 4],
            "non_decreasing_width": True,
        },
        64,
    )
    cost = CostModel(vocab_size=50257, embed_proj_dim=768, max_positions=2048, seq_len=1024)
    base = EntropyConstants(draws=1, max_draws=1)
    sets = [
        ConstantSet.from_config("published", "eq15", base),
        ConstantSet("fitted", "eq15", 4.0, 1.1, 0.0, 0.5),
        ConstantSet("global", "entropy", 1.0, 0.0625, 8.0, 0.5),
    ]
    eigen = spectra(shapes_needed(space, reference, 64), base.seed, 1)
    return space, cost, base, sets, eigen, fit(space, cost, eigen, base, sets, reference), reference


@pytest.mark.slow
def test_fit_rows_are_exact_optima_with_table8_scored_alike(paper_fit):
    space, cost, base, sets, eigen, df, reference = paper_fit
    assert len(df) == 3 * len(sets)
    structures = paper_structures(reference)
    for s in sets:
        table = scaled_table(eigen, s.constants(base))
        objective = EntropyObjective.build(s.objective, space, table)
        for _, row in df[df["set"] == s.name].iterrows():
            budget = replace(Budget.parse(row["budget"]), value=row["budget_used_G"] * 1e9)
            assert row["optimum_score"] == pytest.approx(exact_search(space, objective, cost, budget).score, rel=1e-3)
            assert row["table8_score"] == pytest.approx(
                objective_score(structures[row["table8_model"]], table, s.objective)
            )
            assert row["gap_pct"] >= -1e-9  # Table 8's structure is feasible at budget_used: never above the optimum
            assert (row["distance_steps"] == 0) == (abs(row["gap_pct"]) < 1e-9)
    # MeRino-64M prices above 160 G: the fit compares it at its own cost
    big = df[df["table8_model"] == "MeRino-64M"].iloc[0]
    assert big["budget_used_G"] == pytest.approx(big["table8_flops_G"]) and big["budget_used_G"] > 160


@pytest.mark.slow
def test_fitted_constants_beat_the_published_ones_at_every_budget(paper_fit):
    df = paper_fit[5]
    gaps = df.pivot(index="budget", columns="set", values="gap_pct")
    assert (gaps["fitted"] < gaps["published"]).all() and (gaps["fitted"] < gaps["global"]).all()
    summary = summarise(df)
    assert best_set(summary)["set"] == "fitted"
    assert np.isfinite(summary["max_gap_pct"]).all()
