"""Latency predicted from a datasheet (merino.datasheet, merino.roofline): the roofline of hand-countable
operators, predicted latency tables pricing latency budgets, the efficiency fit and its leave-one-out."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from merino.cost import Budget, CostModel
from merino.datasheet import IDEAL, Datasheet
from merino.entropy import EntropyConstants, EntropyLookupTable
from merino.latency import merino_model
from merino.roofline import (
    OperatorProfile,
    build_predicted_table,
    compare_with_measured,
    fit_efficiency,
    operator_profile,
    predict_models,
)
from merino.search import EntropyObjective, exact_search
from merino.space import Architecture, Block, SearchSpace

MICRO = {"vocab_size": 64, "embed_proj_dim": 32, "max_positions": 16, "head_dim": 32, "weight_sharing": True}
MICRO_SPACE = SearchSpace(
    n_blocks=2, e_min=32, e_max=64, e_step=32, f_min=32, f_max=64, f_step=32, depths=(1, 2), head_dim=32
)


def sheet(peak=1e12, bandwidth=1e11, dtype="float32", **efficiency):
    return Datasheet("dev", {"float32": peak, "float16": 2 * peak}, bandwidth, 4e9, dtype, efficiency)


# ---- the roofline of single operators ----------------------------------------------------------------------
def linear_profile():
    return operator_profile(nn.Linear(64, 32, bias=False), (torch.randn(1, 128, 64),))


def test_a_linear_layer_is_one_kernel_with_its_flops_and_bytes():
    p = linear_profile()
    assert p.ops == ["linear"]
    assert p.flops.tolist() == [2 * 128 * 64 * 32]
    assert p.bytes(4).tolist() == [4 * (128 * 64 + 64 * 32 + 128 * 32)]  # input, weight, output
    assert p.bytes(2).tolist() == [2 * (128 * 64 + 64 * 32 + 128 * 32)]  # at fp16
    assert p.weight_elements == 64 * 32


def test_compute_bound_and_memory_bound_rooflines_are_hand_computed():
    p = linear_profile()
    flops, moved = 2 * 128 * 64 * 32, 4 * (128 * 64 + 64 * 32 + 128 * 32)
    compute_bound = p.predict(sheet(peak=1e9, bandwidth=1e15))
    assert compute_bound["predicted_ms"] == pytest.approx(flops / 1e9 * 1e3)
    assert compute_bound["compute_bound_ms"] == pytest.approx(compute_bound["predicted_ms"])
    memory_bound = p.predict(sheet(peak=1e15, bandwidth=1e8))
    assert memory_bound["predicted_ms"] == pytest.approx(moved / 1e8 * 1e3)
    assert memory_bound["memory_bound_ms"] == pytest.approx(memory_bound["predicted_ms"])
    slowed = p.predict(sheet(peak=1e9, bandwidth=1e15, compute=0.5, overhead_us=7.0))
    assert slowed["predicted_ms"] == pytest.approx(2 * flops / 1e9 * 1e3 + 7e-3)
    half = p.predict(sheet(peak=1e9, bandwidth=1e15, dtype="float16"))  # fp16: the fp16 peak (2e9 here)
    assert half["predicted_ms"] == pytest.approx(flops / 2e9 * 1e3)


class ViewsAndOneKernel(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.1)

    def forward(self, x):
        return (self.drop(x).unsqueeze(0).reshape(-1) * 2.0).view(8, 4)


def test_views_and_eval_dropout_launch_no_kernel_and_embeddings_read_only_their_rows():
    p = operator_profile(ViewsAndOneKernel(), (torch.randn(4, 8),))
    assert p.ops == ["mul"] and p.bytes(4).tolist() == [2 * 32 * 4]  # read and write 32 values
    copy = operator_profile(ViewsAndOneKernel(), (torch.randn(8, 4).t(),))  # reshaping a transpose copies it
    assert copy.ops == ["reshape", "mul"] and copy.bytes(4).tolist() == [2 * 32 * 4] * 2
    e = operator_profile(nn.Embedding(1000, 16), (torch.arange(10).view(1, 10),))
    assert e.ops == ["embedding"] and e.bytes(4).tolist() == [2 * 10 * 16 * 4 + 10 * 8]  # not the 1000 rows


def test_a_model_that_does_not_fit_the_memory_is_flagged():
    p = linear_profile()
    small = Datasheet("dev", {"float32": 1e12}, 1e11, memory_bytes=1000.0)
    assert not p.predict(small)["fits_memory"] and p.predict(sheet())["fits_memory"]


def test_predictions_are_labelled_predicted():
    result = predict_models({"linear": linear_profile()}, sheet())
    assert result["predicted"] and result["protocol"]["predicted"] and result["protocol"]["method"] == "roofline"
    assert result["protocol"]["datasheet"]["name"] == "dev" and result["models"]["linear"]["predicted_ms"] > 0


# ---- the datasheet's config ------------------------------------------------------------------------------------
JETSON = {"peak_gflops": {"float16": 472, "float32": 236}, "bandwidth_gbs": 25.6, "memory_gb": 4, "dtype": "fp16"}


def test_a_config_entry_becomes_a_datasheet_in_si_units():
    s = Datasheet.from_config("jetson-nano", JETSON)
    assert s.peak == 472e9 and s.bandwidth == 25.6e9 and s.memory_bytes == 4e9 and s.itemsize == 2
    assert s.dtype == "float16" and s.efficiency == IDEAL


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"dtype": "bfloat16"}, r"latency.datasheets.jetson-nano.dtype='bfloat16' has no peak"),
        ({"dtype": "int8"}, r"latency.datasheets.jetson-nano.dtype='int8' is not a dtype"),
        ({"bandwidth_gbs": 0}, r"latency.datasheets.jetson-nano.bandwidth_gbs=0.0 must be positive"),
        (
            {"efficiency": {"compute": 1.5}},
            r"latency.datasheets.jetson-nano.efficiency.compute=1.5 must be in \(0, 1\]",
        ),
        (
            {"efficiency": {"launch_us": 3}},
            r"latency.datasheets.jetson-nano.efficiency has unknown keys \['launch_us'\]",
        ),
        ({"peak_gflops": None}, r"latency.datasheets.jetson-nano lacks \['peak_gflops'\]"),
    ],
)
def test_a_bad_datasheet_entry_names_its_key(edit, message):
    entry = {k: v for k, v in {**JETSON, **edit}.items() if v is not None}
    with pytest.raises(ValueError, match=message):
        Datasheet.from_config("jetson-nano", entry)


# ---- a predicted latency table prices latency budgets -----------------------------------------------------------
@pytest.fixture(scope="module")
def predicted_table():
    return build_predicted_table(MICRO_SPACE, MICRO, sheet(overhead_us=5.0), seq_len=8)


def test_a_predicted_table_is_labelled_and_sums_to_the_whole_models_roofline(predicted_table):
    assert predicted_table.device == "dev" and predicted_table.describe()["predicted"]
    assert predicted_table.describe()["method"] == "roofline"
    predicted_table.check_space(MICRO_SPACE)
    arch = Architecture((Block(32, 64, 2), Block(64, 32, 1)))
    torch.manual_seed(0)
    whole = operator_profile(merino_model(arch, MICRO), seq_len=8).predict(sheet(overhead_us=5.0))["predicted_ms"]
    assert predicted_table.predict(arch) == pytest.approx(whole, rel=0.02)


def test_a_search_under_a_predicted_latency_budget_stays_within_it_and_is_optimal(predicted_table):
    cost = CostModel(vocab_size=64, embed_proj_dim=32, max_positions=16, head_dim=32)
    space = MICRO_SPACE
    genes = np.stack(
        np.meshgrid(*[np.arange(n) for n in space.gene_sizes * space.n_blocks], indexing="ij"), -1
    ).reshape(-1, space.n_blocks, 3)
    genes = genes[space.valid_genes(genes)]
    latency = predicted_table.batch(*space.decode(genes))
    budget = Budget.parse(f"latency{np.quantile(latency, 0.4):.4f}ms-dev")
    shapes = {tuple(sorted(s)) for s in space.matrix_shapes()}
    entropy = EntropyLookupTable(EntropyConstants(), {(m, n): m * math.log1p(n) for m, n in shapes})
    objective = EntropyObjective.build("entropy", space, entropy)
    exact = exact_search(space, objective, cost, budget, latency={"dev": predicted_table})
    assert predicted_table.predict(space.to_architecture(exact.genes)) <= budget.value
    assert exact.score == pytest.approx(objective(genes)[latency <= budget.value].max(), rel=1e-12)


# ---- fitted efficiency factors, leave-one-out -------------------------------------------------------------------
def synthetic_profiles(n=7, seed=0):
    """Made-up kernels: some compute-heavy, some memory-heavy, different kernel counts."""
    rng = np.random.default_rng(seed)
    profiles = {}
    for i in range(n):
        k = 20 + 15 * i
        profiles[f"m{i}"] = OperatorProfile(
            ["op"] * k, rng.uniform(0, 2e8, k) * (i % 3 + 1), rng.uniform(0, 2e6, k) * (3 - i % 3), np.zeros(k)
        )
    return profiles


def test_the_fit_recovers_known_efficiency_factors():
    profiles, base = synthetic_profiles(), sheet(peak=1e11, bandwidth=1e10)
    truth = base.with_efficiency(compute=0.4, bandwidth=0.25, overhead_us=30.0)
    measured = {n: p.predict(truth)["predicted_ms"] for n, p in profiles.items()}
    fitted = fit_efficiency(profiles, measured, base)
    assert fitted.efficiency == pytest.approx(truth.efficiency, rel=1e-3)
    comparison = compare_with_measured(profiles, measured, base)
    assert comparison["leave_one_out"]["mean_abs_pct_error"] < 0.1 and comparison["leave_one_out"]["spearman"] == 1
    assert comparison["datasheet"]["mean_pct_error"] < -10  # the ideal device is faster than the measurements


def test_leave_one_out_never_sees_the_left_out_measurement():
    profiles, base = synthetic_profiles(), sheet(peak=1e11, bandwidth=1e10)
    truth = base.with_efficiency(compute=0.4, bandwidth=0.25, overhead_us=30.0)
    measured = {n: p.predict(truth)["predicted_ms"] for n, p in profiles.items()}
    before = {r["model"]: r for r in compare_with_measured(profiles, measured, base)["rows"]}
    after = {
        r["model"]: r for r in compare_with_measured(profiles, {**measured, "m3": 10 * measured["m3"]}, base)["rows"]
    }
    assert after["m3"]["predicted_loo_ms"] == pytest.approx(before["m3"]["predicted_loo_ms"], rel=1e-9)
    assert after["m3"]["predicted_fitted_ms"] != pytest.approx(before["m3"]["predicted_fitted_ms"], rel=1e-3)
    assert after["m0"]["predicted_loo_ms"] != pytest.approx(before["m0"]["predicted_loo_ms"], rel=1e-3)


def test_fitting_three_factors_needs_three_measurements():
    profiles = synthetic_profiles(2)
    with pytest.raises(ValueError, match="at least 3 measured models"):
        fit_efficiency(profiles, dict.fromkeys(profiles, 1.0), sheet())
