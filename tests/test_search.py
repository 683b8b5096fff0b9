import itertools

import numpy as np
import pytest

from merino.cost import Budget
from merino.entropy import ENTROPY_OBJECTIVES, objective_score
from merino.search import (
    SELECTIONS,
    EntropyObjective,
    build_objective,
    evolutionary_search,
    exact_search,
    search_record,
)
from merino.space import Architecture, Block, SearchSpace

# the tiny space with its FFN axis as ratios (Table 8's R), E and L as in conftest's tiny_space
RATIO_SPACE = SearchSpace(n_blocks=3, e_min=64, e_max=256, e_step=64, ffn_ratios=(1, 1.5, 2), depths=(1, 2))


def brute_force(space, table, cost, budget, objective_name):
    """Independent scalar path: every architecture built block by block, priced and scored one by one."""
    best, best_arch = -np.inf, None
    ffn = (lambda e: [r * e for r in space.ffn_ratios]) if space.ffn_ratios else (lambda e: space.f_grid)
    options = [(e, f, l) for e in space.e_grid for f in ffn(e) for l in space.l_grid]
    for combo in itertools.product(options, repeat=space.n_blocks):
        widths = [c[0] for c in combo]
        if space.non_decreasing_width and widths != sorted(widths):
            continue
        arch = Architecture(tuple(Block(int(e), int(f), int(l)) for e, f, l in combo))
        if cost.cost(budget.kind, arch) > budget.value:
            continue
        score = objective_score(arch, table, objective_name)
        if score > best:
            best, best_arch = score, arch
    return best, best_arch


@pytest.mark.parametrize("objective_name", sorted(ENTROPY_OBJECTIVES))
@pytest.mark.parametrize("budget_label", ["flops0.25G", "params0.4M"])
@pytest.mark.parametrize("ratio_axis", [False, True], ids=["absolute-F", "ratio-F"])
def test_exact_solver_equals_brute_force(tiny_space, tiny_table, tiny_cost, objective_name, budget_label, ratio_axis):
    space = RATIO_SPACE if ratio_axis else tiny_space
    budget = Budget.parse(budget_label)
    objective = EntropyObjective.build(objective_name, space, tiny_table)
    exact = exact_search(space, objective, tiny_cost, budget)
    best, _best_arch = brute_force(space, tiny_table, tiny_cost, budget, objective_name)
    assert exact.score == pytest.approx(best, rel=1e-12)
    assert tiny_cost.cost(budget.kind, space.to_architecture(exact.genes)) <= budget.value


def test_the_objectives_differ_where_they_should(tiny_table, tiny_cost):
    """On the ratio space the per-block Eq. 15 and the global form pick different optima (else the
    brute-force comparison above could not tell them apart)."""
    budget = Budget.parse("flops0.25G")
    optima = {
        name: tuple(
            map(
                tuple,
                exact_search(
                    RATIO_SPACE, EntropyObjective.build(name, RATIO_SPACE, tiny_table), tiny_cost, budget
                ).genes.tolist(),
            )
        )
        for name in ("eq15", "eq15_plain", "entropy")
    }
    assert len(set(optima.values())) >= 2


@pytest.mark.parametrize("selection", SELECTIONS)
def test_ea_is_deterministic_and_within_budget(tiny_space, tiny_table, tiny_cost, selection):
    budget = Budget.parse("flops0.25G")
    objective = EntropyObjective.build("eq15", tiny_space, tiny_table)
    kwargs = dict(iterations=3000, population=64, parents=8, selection=selection)
    a = evolutionary_search(tiny_space, objective, tiny_cost, budget, seed=7, **kwargs)
    b = evolutionary_search(tiny_space, objective, tiny_cost, budget, seed=7, **kwargs)
    assert (a.genes == b.genes).all() and a.score == b.score and a.trace == b.trace
    arch = tiny_space.to_architecture(a.genes)
    tiny_space.check(arch)
    assert tiny_cost.flops(arch) <= budget.value
    assert a.mutations == 3000
    assert a.score == pytest.approx(objective_score(arch, tiny_table, "eq15"))


@pytest.mark.parametrize("selection", SELECTIONS)
@pytest.mark.parametrize("objective_name", ["eq15", "entropy"])
def test_ea_reaches_the_optimum_on_a_small_space(tiny_space, tiny_table, tiny_cost, selection, objective_name):
    budget = Budget.parse("flops0.25G")
    objective = EntropyObjective.build(objective_name, tiny_space, tiny_table)
    found = evolutionary_search(
        tiny_space,
        objective,
        tiny_cost,
        budget,
        iterations=20000,
        population=64,
        parents=8,
        seed=0,
        selection=selection,
    )
    assert found.score == pytest.approx(exact_search(tiny_space, objective, tiny_cost, budget).score)


def test_paper_selection_keeps_k_and_refills_to_m(tiny_space, tiny_table, tiny_cost):
    """Algorithm 1 as published: M - K mutations per iteration once the population holds K survivors."""
    objective = EntropyObjective.build("eq15", tiny_space, tiny_table)
    calls = []

    def counting(genes):
        calls.append(len(genes))
        return objective(genes)

    evolutionary_search(
        tiny_space,
        counting,
        tiny_cost,
        Budget.parse("flops1G"),
        iterations=3 * 56,
        population=64,
        parents=8,
        seed=0,
        selection="paper",
    )
    assert calls[0] == 64 and all(n <= 56 for n in calls[1:]) and sum(calls[1:]) <= 3 * 56
    with pytest.raises(ValueError, match="K < M"):
        evolutionary_search(
            tiny_space,
            objective,
            tiny_cost,
            Budget.parse("flops1G"),
            iterations=10,
            population=8,
            parents=8,
            seed=0,
            selection="paper",
        )
    with pytest.raises(ValueError, match="search.selection"):
        evolutionary_search(
            tiny_space,
            objective,
            tiny_cost,
            Budget.parse("flops1G"),
            iterations=10,
            population=8,
            parents=2,
            seed=0,
            selection="tournament",
        )


def test_budget_below_smallest_architecture(tiny_space, tiny_table, tiny_cost):
    objective = EntropyObjective.build("entropy", tiny_space, tiny_table)
    with pytest.raises(ValueError, match="below the smallest architecture"):
        evolutionary_search(
            tiny_space, objective, tiny_cost, Budget.parse("flops1M"), iterations=10, population=8, parents=2, seed=0
        )


def test_unknown_objective(tiny_space, tiny_table):
    with pytest.raises(ValueError, match="'ntk'"):
        EntropyObjective.build("ntk", tiny_space, tiny_table)


def test_search_record(tiny_space, tiny_table, tiny_cost):
    settings = dict(iterations=2000, population=32, parents=8, seed=0, certify=True, cpu_watts=10.0)
    record = search_record(tiny_space, tiny_table, tiny_cost, "eq15", "params0.4M", settings)
    assert record["cost"]["params_shared"] <= 0.4e6 and record["selection"] == "paper"
    assert record["entropy"]["objective_name"] == "eq15" and record["entropy"]["objective"] == record["score"]
    assert record["certificate"]["gap_pct"] >= -1e-9
    assert record["search_cost"]["mutations"] == 2000 and record["search_cost"]["energy_J"] > 0
    memory = search_record(tiny_space, tiny_table, tiny_cost, "entropy", "memory8MB", settings)
    assert "skipped" in memory["certificate"] and memory["cost"]["memory_bytes"] <= 8 * 2**20


def test_proxy_objective_scores_each_distinct_architecture_once(tiny_space, tiny_cost):
    calls = []

    def params(arch):  # a proxy that maximises parameters (LTS-like), computed the slow way
        calls.append(arch)
        return float(tiny_cost.non_embedding_params(arch))

    objective = build_objective("decoder_params", tiny_space, None, params)
    genes = tiny_space.sample(np.random.default_rng(0), 5)
    twice = np.concatenate([genes, genes, genes[:2]])
    scores = objective(twice)
    assert len(calls) == objective.evaluations == len(np.unique(tiny_space.keys(genes)))
    assert scores.tolist() == [params(tiny_space.to_architecture(g)) for g in twice]


def test_proxy_driven_search_is_deterministic_within_budget_and_not_certified(tiny_space, tiny_table, tiny_cost):
    settings = dict(iterations=256, population=16, parents=4, seed=3, certify=True, cpu_watts=10.0)

    def score(arch):
        return float(tiny_cost.non_embedding_params(arch))

    a = search_record(tiny_space, tiny_table, tiny_cost, "decoder_params", "flops0.25G", settings, scorer=score)
    b = search_record(tiny_space, tiny_table, tiny_cost, "decoder_params", "flops0.25G", settings, scorer=score)
    assert a["architecture"] == b["architecture"] and a["score"] == b["score"]
    assert a["cost"]["flops"] <= 0.25e9 and a["score"] == a["cost"]["non_embedding_params"]
    assert "separable entropy objectives" in a["certificate"]["skipped"]
    c = a["search_cost"]
    assert c["mutations"] == 256 and 0 < c["objective_computations"] <= c["evaluations"]
    # an entropy search counts every architecture it scores, a proxy only the distinct ones it computed
    assert (
        search_record(tiny_space, tiny_table, tiny_cost, "entropy", "flops0.25G", settings)["search_cost"][
            "objective_computations"
        ]
        > 0
    )
    with pytest.raises(ValueError, match="needs its scorer"):
        search_record(tiny_space, tiny_table, tiny_cost, "ntk", "flops0.25G", settings)
