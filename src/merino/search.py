"""Architecture search under a compute budget: the evolutionary algorithm of paper Algorithm 1,
and an exact solver of the Eq. 15 mathematical programme that certifies it.

Objectives are callables on gene populations (P, N, 3) returning scores (P,).  Entropy
objectives (Eq. 15 and the forms beside it, :data:`merino.entropy.ENTROPY_OBJECTIVES`) are
*separable*: score = pen(L, w_hat) * sum_i v(E_i, F_i, L_i), pen = 1 for the per-block forms,
which the exact solver exploits; the training-free proxies of the comparisons (NTK, DSS-Score, decoder params;
paper Fig. 5, Table 4) are :class:`ProxyObjective` s that score one architecture at a time.

Budgets are priced by a *pricing* (:func:`merino.cost.pricing`): a CostModel kind (flops,
params, memory) or, for ``latency<N>ms-<device>``, that device's measured latency table
(:class:`merino.latency.LatencyTable`, passed as ``latency``).  Both price whole populations
at once; the additive ones (flops, params, latency) are also solved exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .cost import Budget, CostModel, latency_tables, pricing
from .entropy import (
    ENTROPY_OBJECTIVES,
    EntropyConstants,
    EntropyLookupTable,
    ObjectiveForm,
    architecture_factor,
    block_objective,
    objective_form,
)
from .space import Architecture, SearchSpace

# training-free proxies as objectives (merino.proxies.proxy_scorer): TE-NAS, TF-TAS, LTS (Fig. 5, Table 4)
PROXY_OBJECTIVES = ("ntk", "dss", "decoder_params")
# Algorithm 1's selection: "paper" keeps the K best each iteration and refills to M by mutating random
# survivors; "generational" (ours before) gives K random members M/K children each and keeps the M best
SELECTIONS = ("paper", "generational")


@dataclass
class EntropyObjective:
    """An entropy objective (:data:`merino.entropy.ENTROPY_OBJECTIVES`) on a search space: the sum of
    per-block terms looked up in ``block_values``, times the factor of the whole architecture (1 but
    for the global form)."""

    name: str
    space: SearchSpace
    block_values: np.ndarray  # (nE, nF, nL): one block's term of the objective per gene value
    constants: EntropyConstants
    form: ObjectiveForm

    @classmethod
    def build(cls, name: str, space: SearchSpace, table: EntropyLookupTable) -> EntropyObjective:
        form, c = objective_form(name), table.constants
        mhsa, ffn = table.grids(space)
        values = block_objective(
            space.e_grid[:, None, None],
            space.ffn_table[:, :, None],
            space.l_grid[None, None, :],
            mhsa[:, None, None],
            ffn[:, :, None],
            c,
            form,
        )
        return cls(name, space, values, c, form)

    def penalty(self, n_layers, min_width):
        return architecture_factor(n_layers, min_width, self.constants, self.form)

    def block_sum(self, genes: np.ndarray) -> np.ndarray:
        return self.block_values[genes[..., 0], genes[..., 1], genes[..., 2]].sum(-1)

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        e, _, l = self.space.decode(genes)
        return self.block_sum(genes) * self.penalty(l.sum(-1), e.min(-1))


@dataclass
class ProxyObjective:
    """A training-free proxy as the search objective: ``score`` (Architecture -> float, higher is better)
    runs once per distinct architecture; ``evaluations`` counts those runs (the search's real cost)."""

    name: str
    space: SearchSpace
    score: Callable[[Architecture], float]
    scores: dict[int, float] = field(default_factory=dict)

    @property
    def evaluations(self) -> int:
        return len(self.scores)

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        out = np.empty(len(genes))
        for i, (key, g) in enumerate(zip(self.space.keys(genes).tolist(), genes)):
            if key not in self.scores:
                self.scores[key] = float(self.score(self.space.to_architecture(g)))
            out[i] = self.scores[key]
        return out


def build_objective(
    name: str, space: SearchSpace, table: EntropyLookupTable, scorer: Callable[[Architecture], float] | None = None
):
    """An entropy objective (Eq. 15 and its Table 6 ablations) by name, or a proxy objective from ``scorer``."""
    if name in ENTROPY_OBJECTIVES:
        return EntropyObjective.build(name, space, table)
    if scorer is None:
        raise ValueError(
            f"objective {name!r} is not an entropy objective ({sorted(ENTROPY_OBJECTIVES)}); "
            "a proxy objective needs its scorer (merino.proxies.proxy_scorer)"
        )
    return ProxyObjective(name, space, scorer)


@dataclass
class SearchResult:
    genes: np.ndarray
    score: float
    mutations: int
    evaluations: int
    trace: list = field(default_factory=list)  # (mutations so far, best score)


def _population_cost(space: SearchSpace, price, genes: np.ndarray) -> np.ndarray:
    return price.batch(*space.decode(genes))


def smallest_cost(space: SearchSpace, cost: CostModel, kind: str | Budget, latency=None) -> float:
    """Cost of the smallest architecture of the space (every gene at its minimum) under a CostModel
    kind or a budget (a latency budget needs ``latency``, see :func:`merino.cost.pricing`)."""
    price = pricing(cost, kind, latency)
    return float(_population_cost(space, price, np.zeros((1, space.n_blocks, 3), dtype=np.int64))[0])


def check_budget(space: SearchSpace, cost: CostModel, budget: Budget, latency=None):
    """The budget's pricing and the budget in absolute units (a relative one resolved against the smallest
    architecture of ``space``); raise if that smallest architecture does not fit an absolute budget."""
    price = pricing(cost, budget, latency)
    price.check_space(space)
    low = float(_population_cost(space, price, np.zeros((1, space.n_blocks, 3), dtype=np.int64))[0])
    budget = budget.resolve(low)
    if low > budget.value:
        unit = "ms" if budget.kind == "latency" else budget.kind
        raise ValueError(
            f"budget {budget.label!r} ({budget.value:.4g} {unit}) is below the smallest "
            f"architecture of the search space ({low:.4g} {unit}); a relative budget such as "
            f"'latency2x-<device>' is feasible on any device"
        )
    return price, budget


def evolutionary_search(
    space: SearchSpace,
    objective,
    cost: CostModel,
    budget: Budget,
    *,
    iterations: int,
    population: int,
    parents: int,
    seed: int,
    selection: str = "paper",
    trace_every: int = 1000,
    latency=None,
) -> SearchResult:
    """Algorithm 1.  ``iterations`` (T) counts mutations; a mutation is 1 + Geometric(1/2) moves of
    Algorithm 2; children over the budget are dropped.  ``selection``:

    * ``paper`` (Algorithm 1 as published): the population is refilled to ``population`` (M) distinct
      architectures by mutating members drawn uniformly, then cut to its best ``parents`` (K);
    * ``generational``: each generation draws K members uniformly, gives each M/K children and keeps
      the best M distinct architectures.

    Vectorised (one refill or generation at a time); deterministic for a given ``seed``.
    ``latency``: the latency table(s) a latency budget refers to (:func:`merino.cost.pricing`)."""
    if selection not in SELECTIONS:
        raise ValueError(f"search.selection must be one of {SELECTIONS}, got {selection!r}")
    if not 1 <= parents <= population or (selection == "paper" and parents == population):
        raise ValueError(
            f"search: need 1 <= parents (K={parents!r}) <= population (M={population!r}), "
            "K < M for the paper's selection"
        )
    price, budget = check_budget(space, cost, budget, latency)
    rng = np.random.default_rng(seed)

    def feasible(genes):
        return space.valid_genes(genes) & (_population_cost(space, price, genes) <= budget.value)

    # initial population: uniform samples that fit the budget; else the smallest architecture (F0)
    pop = np.zeros((0, space.n_blocks, 3), dtype=np.int64)
    for _ in range(20):
        draw = space.sample(rng, population)
        pop = np.concatenate([pop, draw[feasible(draw)]])[:population]
        if len(pop) >= population:
            break
    if not len(pop):
        pop = np.zeros((1, space.n_blocks, 3), dtype=np.int64)
    evaluations = len(pop)
    pop, scores = _select(space, pop, objective(pop), parents if selection == "paper" else population)

    per_parent = max(1, population // parents)
    trace, mutations, traced = [], 0, 0
    while mutations < iterations:
        if selection == "paper":
            n = min(population - len(pop), iterations - mutations)
            chosen = pop[rng.integers(0, len(pop), n)]
        else:
            n = min(per_parent * parents, iterations - mutations)
            chosen = np.repeat(pop[rng.integers(0, len(pop), parents)], per_parent, axis=0)[:n]
        children = space.mutate(rng, chosen)
        more = rng.random(n) < 0.5
        while more.any():  # 1 + Geometric(1/2) moves per child
            children[more] = space.mutate(rng, children[more])
            more &= rng.random(n) < 0.5
        mutations += n
        children = children[feasible(children)]
        if len(children):
            evaluations += len(children)
            pop, scores = _select(
                space, np.concatenate([pop, children]), np.concatenate([scores, objective(children)]), population
            )
        if selection == "paper" and (len(pop) >= population or mutations >= iterations):
            pop, scores = pop[:parents], scores[:parents]
        if mutations >= traced + trace_every or mutations >= iterations:
            traced = mutations - mutations % trace_every
            trace.append((mutations, float(scores[0])))
    return SearchResult(pop[0], float(scores[0]), mutations, evaluations, trace)


def _select(space, genes, scores, keep):
    """Distinct architectures sorted by score (desc, ties by key), the best ``keep``."""
    keys = space.keys(genes)
    _, first = np.unique(keys, return_index=True)
    genes, scores, keys = genes[first], scores[first], keys[first]
    order = np.lexsort((keys, -scores))[:keep]
    return genes[order], scores[order]


# ---- exact solver --------------------------------------------------------------------------------------
@dataclass
class _Half:
    """Every combination of a run of consecutive blocks, reduced to per-key Pareto fronts."""

    genes: np.ndarray  # (n, k, 3)
    cost: np.ndarray  # (n,)
    value: np.ndarray  # (n,) sum of the blocks' terms
    layers: np.ndarray  # (n,) sum of L_i
    e_first: np.ndarray  # (n,) E index of the first block
    e_last: np.ndarray
    e_min: np.ndarray


MAX_HALF_COMBINATIONS = 20_000_000
ADDITIVE_KINDS = ("flops", "params", "latency")


def _enumerate_half(space, objective, price, k, with_start, with_end) -> _Half:
    ne, nf, nl = space.gene_sizes
    per_block = ne * nf * nl
    if per_block**k > MAX_HALF_COMBINATIONS:
        raise ValueError(
            f"exact solver: {per_block}^{k} combinations per half of the search space exceed "
            f"{MAX_HALF_COMBINATIONS:,}; it handles up to 4 blocks of the paper's grid"
        )
    options = np.stack(np.meshgrid(np.arange(ne), np.arange(nf), np.arange(nl), indexing="ij"), -1).reshape(-1, 3)
    idx = np.stack(np.meshgrid(*[np.arange(per_block)] * k, indexing="ij"), -1).reshape(-1, k)
    genes = options[idx]  # (n, k, 3)
    if space.non_decreasing_width and k > 1:
        genes = genes[np.all(np.diff(genes[..., 0], axis=-1) >= 0, axis=-1)]
    e, f, l = space.decode(genes)
    c = price.block_term(e, f, l).sum(-1).astype(np.float64)
    if k > 1:
        c = c + price.transition_term(e[:, :-1], e[:, 1:]).sum(-1)
    d = price.embed_proj_dim
    if with_start:
        c = c + price.constant_term() + price.transition_term(d, e[:, 0])
    if with_end:
        c = c + price.transition_term(e[:, -1], d)
    value = objective.block_sum(genes)
    return _Half(genes, c, value, l.sum(-1), genes[:, 0, 0], genes[:, -1, 0], genes[..., 0].min(-1))


def _pareto(half: _Half, key: np.ndarray, budget: float) -> tuple[_Half, np.ndarray]:
    """Keep, per key, the items no cheaper-or-equal item of the same key beats in value."""
    ok = half.cost <= budget
    sel = np.flatnonzero(ok)
    order = sel[np.lexsort((-half.value[sel], half.cost[sel], key[sel]))]
    k, v = key[order], half.value[order]
    span = float(np.ptp(half.value)) + 1.0 if len(half.value) else 1.0
    lifted = v + k.astype(np.float64) * 4 * span  # monotone across keys, so one running max serves all
    best_before = np.concatenate([[-np.inf], np.maximum.accumulate(lifted)[:-1]])
    new_key = np.concatenate([[True], k[1:] != k[:-1]])
    keep = order[new_key | (lifted > best_before)]
    pick = lambda a: a[keep]  # noqa: E731
    return _Half(
        pick(half.genes),
        pick(half.cost),
        pick(half.value),
        pick(half.layers),
        pick(half.e_first),
        pick(half.e_last),
        pick(half.e_min),
    ), key[keep]


def exact_search(
    space: SearchSpace, objective: EntropyObjective, cost: CostModel, budget: Budget, latency=None
) -> SearchResult:
    """The global optimum of an entropy objective over ``space`` (meet in the middle, no discretisation).

    Every entropy objective is a sum of per-block terms times a factor of (total depth, narrowest
    width) that is 1 for the per-block forms (Eq. 15); the cost is additive over blocks plus terms
    between neighbours.  Both halves of the block sequence are enumerated and reduced to Pareto
    fronts (cost vs value) per boundary width (and, for the global form, narrowest width and depth);
    each left item is then matched with the best affordable right item of every compatible right key
    by binary search.  Handles additive budgets (flops, params, latency)."""
    if budget.kind not in ADDITIVE_KINDS:
        raise ValueError(f"exact solver handles additive budgets {ADDITIVE_KINDS}, not {budget.kind!r}")
    price, budget = check_budget(space, cost, budget, latency)
    n = space.n_blocks
    b = budget.value
    if n == 1:
        whole = _enumerate_half(space, objective, price, 1, True, True)
        e, _, _ = space.decode(whole.genes)
        score = np.where(whole.cost <= b, whole.value * objective.penalty(whole.layers, e.min(-1)), -np.inf)
        i = int(np.argmax(score))
        return SearchResult(whole.genes[i], float(score[i]), 0, len(score))
    ne = space.gene_sizes[0]
    max_layers = n * int(space.l_grid.max()) + 1
    left = _enumerate_half(space, objective, price, math.ceil(n / 2), True, False)
    right = _enumerate_half(space, objective, price, n - math.ceil(n / 2), False, True)
    examined = len(left.cost) + len(right.cost)
    if objective.form.per_block:  # the objective is left + right: the boundary width is all they share
        lkey, rkey = left.e_last.copy(), right.e_first.copy()
    else:
        lkey = (left.e_last * ne + left.e_min) * max_layers + left.layers
        rkey = (right.e_first * ne + right.e_min) * max_layers + right.layers
    left, _ = _pareto(left, lkey, b)
    right, rkey = _pareto(right, rkey, b)
    e_grid = space.e_grid
    best = (-np.inf, None, None)
    starts = np.flatnonzero(np.concatenate([[True], rkey[1:] != rkey[:-1]]))
    ends = np.append(starts[1:], len(rkey))
    for s, t in zip(starts, ends):
        e_first, e_min, layers = right.e_first[s], right.e_min[s], right.layers[s]
        rc, rv = right.cost[s:t], right.value[s:t]
        compatible = left.e_last <= e_first if space.non_decreasing_width else np.ones(len(left.cost), bool)
        remaining = b - left.cost - price.transition_term(e_grid[left.e_last], e_grid[e_first])
        j = np.searchsorted(rc, remaining, side="right") - 1
        ok = compatible & (j >= 0)
        if not ok.any():
            continue
        total = np.where(ok, left.value + rv[np.maximum(j, 0)], -np.inf)
        total = total * objective.penalty(left.layers + layers, e_grid[np.minimum(left.e_min, e_min)])
        i = int(np.argmax(total))
        if total[i] > best[0]:
            best = (float(total[i]), i, s + int(j[i]))
    if best[1] is None:
        raise ValueError(f"exact solver found no architecture within budget {budget.label!r}")
    genes = np.concatenate([left.genes[best[1]], right.genes[best[2]]])
    return SearchResult(genes, best[0], 0, examined)


def search_record(
    space: SearchSpace,
    table: EntropyLookupTable,
    cost: CostModel,
    objective_name: str,
    budget_label: str,
    settings: dict,
    latency=None,
    scorer=None,
) -> dict:
    """Run one search (Algorithm 1) as configured, certify it with the exact solver if asked, and
    return the result file's content: architecture, its costs and entropy, search cost (time,
    evaluations, energy; Table 4) and the gap to the optimum.  ``latency``: latency table(s) (one,
    or device -> table) for a latency budget; the record gives the architecture's predicted
    latency on every table passed.  ``scorer``: a proxy objective's per-architecture score
    (:func:`merino.proxies.proxy_scorer`); entropy objectives need none."""
    from .entropy import architecture_entropy
    from .provenance import Meter

    budget = Budget.parse(budget_label)
    absolute = check_budget(space, cost, budget, latency)[1]  # a relative budget in ms, resolved once
    objective = build_objective(objective_name, space, table, scorer)
    separable = isinstance(objective, EntropyObjective)
    selection = settings.get("selection", "paper")
    with Meter(settings["cpu_watts"]) as meter:
        found = evolutionary_search(
            space,
            objective,
            cost,
            absolute,
            iterations=settings["iterations"],
            population=settings["population"],
            parents=settings["parents"],
            seed=settings["seed"],
            selection=selection,
            latency=latency,
        )
    arch = space.to_architecture(found.genes, name=f"{objective_name}@{budget_label}")
    certificate = None
    if settings["certify"] and separable and budget.kind in ADDITIVE_KINDS:
        with Meter(settings["cpu_watts"]) as exact_meter:
            best = exact_search(space, objective, cost, absolute, latency=latency)
        certificate = {
            "optimum": best.score,
            "optimal_architecture": space.to_architecture(best.genes).to_dict(),
            "gap_pct": 100 * (best.score - found.score) / best.score,
            "solver_wall_s": exact_meter.wall_s,
            "candidates_enumerated": best.evaluations,
        }
    elif settings["certify"] and not separable:
        certificate = {"skipped": f"the exact solver handles the separable entropy objectives, not {objective_name!r}"}
    elif settings["certify"]:
        certificate = {"skipped": f"the exact solver handles {', '.join(ADDITIVE_KINDS)} budgets, not {budget.kind}"}
    budget_record = {"label": budget.label, "kind": budget.kind, "value": absolute.value, "unit": budget.unit}
    if budget.relative:  # the multiple, and what it multiplies: the smallest architecture on that device
        budget_record.update(multiple=budget.value, smallest_architecture=absolute.value / budget.value)
    if budget.device is not None:
        budget_record["device"] = budget.device
    record = {
        "objective": objective_name,
        "budget": budget_record,
        "architecture": arch.to_dict(),
        "score": found.score,
        "entropy": architecture_entropy(arch, table, objective_name if separable else "eq15").to_dict(),
        "cost": cost.summary(arch),
        # evaluations: architectures the EA scored; objective_computations: how many times the objective ran
        # (a proxy runs once per distinct architecture, entropy is looked up for every one)
        "selection": selection,
        "search_cost": {
            **meter.record(),
            "mutations": found.mutations,
            "evaluations": found.evaluations,
            "objective_computations": found.evaluations if separable else objective.evaluations,
        },
        "trace": found.trace,
        "certificate": certificate,
    }
    if latency is not None:
        record["latency"] = {
            device: {"predicted_ms": t.predict(arch), "table": t.describe()}
            for device, t in latency_tables(latency).items()
        }
    return record
