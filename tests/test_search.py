import itertools

import numpy as np
import pytest

from merino.cost import Budget
from merino.entropy import architecture_entropy
from merino.search import EntropyObjective, build_objective, evolutionary_search, exact_search, search_record
from merino.space import Architecture, Block


def brute_force(space, table, cost, budget, objective_name):
    """Independent scalar path: every architecture priced and scored one by one."""
    best, best_arch = -np.inf, None
    options = list(itertools.product(space.e_grid, space.f_grid, space.l_grid))
    for combo in itertools.product(options, repeat=space.n_blocks):
        widths = [c[0] for c in combo]
        if space.non_decreasing_width and widths != sorted(widths):
            continue
        arch = Architecture(tuple(Block(int(e), int(f), int(l)) for e, f, l in combo))
        if cost.cost(budget.kind, arch) > budget.value:
            continue
        h = architecture_entropy(arch, table)
        score = {"entropy": h.objective, "entropy_plain": h.entropy,
                 "entropy_gamma": h.entropy_with_gamma}[objective_name]
        if score > best:
            best, best_arch = score, arch
    return best, best_arch


@pytest.mark.parametrize("objective_name", ["entropy", "entropy_plain", "entropy_gamma"])
@pytest.mark.parametrize("budget_label", ["flops0.25G", "params0.4M"])
def test_exact_solver_equals_brute_force(tiny_space, tiny_table, tiny_cost, objective_name, budget_label):
    budget = Budget.parse(budget_label)
    objective = EntropyObjective.build(objective_name, tiny_space, tiny_table)
    exact = exact_search(tiny_space, objective, tiny_cost, budget)
    best, best_arch = brute_force(tiny_space, tiny_table, tiny_cost, budget, objective_name)
    assert exact.score == pytest.approx(best, rel=1e-12)
    assert tiny_cost.cost(budget.kind, tiny_space.to_architecture(exact.genes)) <= budget.value


def test_ea_is_deterministic_and_within_budget(tiny_space, tiny_table, tiny_cost):
    budget = Budget.parse("flops0.25G")
    objective = EntropyObjective.build("entropy", tiny_space, tiny_table)
    kwargs = dict(iterations=3000, population=64, parents=8)
    a = evolutionary_search(tiny_space, objective, tiny_cost, budget, seed=7, **kwargs)
    b = evolutionary_search(tiny_space, objective, tiny_cost, budget, seed=7, **kwargs)
    assert (a.genes == b.genes).all() and a.score == b.score and a.trace == b.trace
    arch = tiny_space.to_architecture(a.genes)
    tiny_space.check(arch)
    assert tiny_cost.flops(arch) <= budget.value
    assert a.mutations == 3000
    assert a.score == pytest.approx(architecture_entropy(arch, tiny_table).objective)


def test_ea_reaches_the_optimum_on_a_small_space(tiny_space, tiny_table, tiny_cost):
    budget = Budget.parse("flops0.25G")
    objective = EntropyObjective.build("entropy", tiny_space, tiny_table)
    found = evolutionary_search(tiny_space, objective, tiny_cost, budget, iterations=5000, population=64,
                                parents=8, seed=0)
    assert found.score == pytest.approx(exact_search(tiny_space, objective, tiny_cost, budget).score)


def test_budget_below_smallest_architecture(tiny_space, tiny_table, tiny_cost):
    objective = EntropyObjective.build("entropy", tiny_space, tiny_table)
    with pytest.raises(ValueError, match="below the smallest architecture"):
        evolutionary_search(tiny_space, objective, tiny_cost, Budget.parse("flops1M"), iterations=10,
                            population=8, parents=2, seed=0)


def test_unknown_objective(tiny_space, tiny_table):
    with pytest.raises(ValueError, match="'ntk'"):
        EntropyObjective.build("ntk", tiny_space, tiny_table)


def test_search_record(tiny_space, tiny_table, tiny_cost):
    settings = dict(iterations=2000, population=32, parents=8, seed=0, certify=True, cpu_watts=10.0)
    record = search_record(tiny_space, tiny_table, tiny_cost, "entropy", "params0.4M", settings)
    assert record["cost"]["params_shared"] <= 0.4e6
    assert record["certificate"]["gap_pct"] >= -1e-9
    assert record["search_cost"]["mutations"] == 2000 and record["search_cost"]["energy_J"] > 0
    memory = search_record(tiny_space, tiny_table, tiny_cost, "entropy", "memory8MB", settings)
    assert "skipped" in memory["certificate"] and memory["cost"]["memory_bytes"] <= 8 * 2**20


def test_proxy_objective_scores_each_distinct_architecture_once(tiny_space, tiny_cost):
    calls = []

    def params(arch):   # a proxy that maximises parameters (LTS-like), computed the slow way
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
    assert search_record(tiny_space, tiny_table, tiny_cost, "entropy", "flops0.25G",
                         settings)["search_cost"]["objective_computations"] > 0
    with pytest.raises(ValueError, match="needs its scorer"):
        search_record(tiny_space, tiny_table, tiny_cost, "ntk", "flops0.25G", settings)
