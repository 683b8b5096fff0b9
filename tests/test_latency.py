"""Latency protocol, per-device latency tables and latency budgets (merino.latency, merino.cost, merino.search).

Structure and correctness only: no assertion depends on how fast this machine is."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from merino.cost import Budget, CostModel, pricing
from merino.entropy import EntropyConstants, EntropyLookupTable
from merino.latency import (
    LatencyTable,
    build_latency_table,
    check_predictor,
    measure_latency,
    measure_models,
    merino_model,
)
from merino.search import EntropyObjective, evolutionary_search, exact_search, search_record
from merino.space import Architecture, Block, SearchSpace

# a model convention and search space small enough to measure in a second
MICRO = {"vocab_size": 64, "embed_proj_dim": 32, "max_positions": 16, "head_dim": 32, "weight_sharing": True}
MICRO_SPACE = SearchSpace(
    n_blocks=2, e_min=32, e_max=64, e_step=32, f_min=32, f_max=64, f_step=32, depths=(1, 2), head_dim=32
)
STATS = ("mean_ms", "median_ms", "std_ms", "min_ms", "max_ms", "samples_ms")


def micro_model():
    return merino_model(Architecture((Block(32, 32, 1),)), MICRO)


def test_models_follow_the_conventions_norm_and_older_conventions_are_pre_ln():
    """MICRO has no `norm`, like a convention in a results file written before the key existed."""
    assert micro_model().config.norm == "pre"
    post = merino_model(Architecture((Block(32, 32, 1),)), {**MICRO, "norm": "post"})
    assert post.config.norm == "post" and all(layer.post_norm for layer in post.model.blocks[0].layers)


def test_measure_latency_follows_the_paper_protocol():
    before = torch.get_num_threads()
    r = measure_latency(micro_model(), seq_len=8, warmup=1, threads=1)
    assert set(STATS) <= set(r)
    assert len(r["samples_ms"]) == 16 and r["repeats"] == 16 and (r["batch_size"], r["seq_len"]) == (1, 8)
    assert r["min_ms"] <= r["median_ms"] <= r["max_ms"] and r["min_ms"] <= r["mean_ms"] <= r["max_ms"]
    assert r["mean_ms"] == pytest.approx(np.mean(r["samples_ms"])) and r["std_ms"] >= 0
    assert r["threads"] == 1 and torch.get_num_threads() == before  # the thread count is restored
    assert r["dtype"] == "float32" and r["torch_version"] == torch.__version__
    assert r["device"] == "cpu" and r["device_name"] and r["inference_mode"]
    assert r["params"] == CostModel(vocab_size=64, embed_proj_dim=32, max_positions=16, head_dim=32).params(
        Architecture((Block(32, 32, 1),))
    )


def test_measure_latency_takes_any_module_and_inputs():
    r = measure_latency(nn.Linear(4, 4), inputs=torch.ones(1, 2, 4), repeats=3, warmup=0, dtype="bfloat16")
    assert len(r["samples_ms"]) == 3 and r["dtype"] == "bfloat16"
    with pytest.raises(ValueError, match="vocab_size"):
        measure_latency(nn.Linear(4, 4), repeats=1)


class Recorder(nn.Module):
    """Logs its name at every call."""

    def __init__(self, name, log):
        super().__init__()
        self.name, self.log, self.lin = name, log, nn.Linear(2, 2)

    def forward(self, x):
        self.log.append(self.name)
        return self.lin(x)


def test_measure_models_interleaves_rounds_and_computes_ratios():
    log, built = [], []

    def factory():
        built.append(torch.rand(1).item())  # called after torch.manual_seed(seed)
        return Recorder("c", log)

    models = {"a": Recorder("a", log), "b": Recorder("b", log), "c": factory}
    r = measure_models(models, reference="b", inputs=torch.ones(1, 2), warmup=1, repeats=4, threads=1, seed=3)
    torch.manual_seed(3)
    assert built == [torch.rand(1).item()]
    # warm-up round, then round r starts at model r mod 3
    assert log == ["a", "b", "c", "a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    assert set(r["models"]) == {"a", "b", "c"} and r["reference"] == "b"
    assert all(len(m["samples_ms"]) == 4 for m in r["models"].values())
    s = {k: np.array(m["samples_ms"]) for k, m in r["models"].items()}
    for name, ratio in r["ratios"].items():
        assert ratio["mean"] == pytest.approx(s[name].mean() / s["b"].mean())
        assert ratio["median"] == pytest.approx(np.median(s[name]) / np.median(s["b"]))
        assert ratio["paired_median"] == pytest.approx(np.median(s[name] / s["b"]))
    assert r["ratios"]["b"] == {"mean": 1.0, "median": 1.0, "paired_median": 1.0}
    assert r["protocol"]["threads"] == 1 and "round-robin" in r["protocol"]["schedule"]
    with pytest.raises(ValueError, match="'z'"):
        measure_models(models, reference="z", inputs=torch.ones(1, 2), repeats=1)


# ---- lookup table -----------------------------------------------------------------------------------------
def synthetic_table(space, d, vocab, device="cpu"):
    """A table with made-up entries that grow with E, F and the projection sizes."""
    e, f = space.e_grid, space.f_grid
    widths = np.unique(np.append(e, d))
    proj = 1e-4 * widths[:, None] * widths[None, :] / 64
    np.fill_diagonal(proj, 0.0)
    return LatencyTable(
        device,
        {
            "vocab_size": vocab,
            "embed_proj_dim": d,
            "max_positions": 256,
            "head_dim": space.head_dim,
            "weight_sharing": True,
        },
        e.copy(),
        f.copy(),
        0.1 + 1e-3 * e[:, None] + 2e-4 * f[None, :] + 1e-6 * e[:, None] * f[None, :],
        widths,
        proj,
        1.5,
        {
            "device_name": "synthetic",
            "threads": 1,
            "batch_size": 1,
            "seq_len": 128,
            "dtype": "float32",
            "statistic": "median",
            "torch_version": torch.__version__,
        },
    )


def test_predictor_is_the_sum_of_its_table_entries(tiny_space):
    table = synthetic_table(tiny_space, d=128, vocab=512)
    layer = {
        (int(e), int(f)): table.layer_ms[i, j]
        for i, e in enumerate(table.e_values)
        for j, f in enumerate(table.f_values)
    }
    w = {int(x): i for i, x in enumerate(table.widths)}
    proj = lambda a, b: table.projection_ms[w[a], w[b]]  # noqa: E731
    arch = Architecture((Block(64, 256, 2), Block(128, 128, 1), Block(128, 512, 2)))
    expected = (
        1.5
        + 2 * layer[64, 256]
        + layer[128, 128]
        + 2 * layer[128, 512]
        + proj(128, 64)
        + proj(64, 128)
        + 0.0
        + proj(128, 128)
    )  # D=128 -> 64 -> 128 -> 128 -> D=128
    assert proj(128, 128) == 0.0
    assert table.predict(arch) == pytest.approx(expected)
    b = table.breakdown(arch)
    assert b["total_ms"] == pytest.approx(b["constant_ms"] + sum(b["blocks_ms"]) + sum(b["projections_ms"]))
    genes = tiny_space.sample(np.random.default_rng(0), 40)  # vectorised over a population
    np.testing.assert_allclose(
        table.batch(*tiny_space.decode(genes)), [table.predict(tiny_space.to_architecture(g)) for g in genes]
    )
    with pytest.raises(ValueError, match=r"no layer width E \[96\]"):
        table.predict(Architecture((Block(96, 128, 1),)))


def test_table_saves_and_loads_with_provenance(tiny_space, tmp_path):
    table = synthetic_table(tiny_space, d=128, vocab=512)
    table.save(tmp_path / "lookup.json", provenance={"seed": 0})
    again = LatencyTable.load(tmp_path / "lookup.json")
    assert again.device == "cpu" and again.protocol == table.protocol and again.convention == table.convention
    for name in ("e_values", "f_values", "layer_ms", "widths", "projection_ms"):
        np.testing.assert_array_equal(getattr(again, name), getattr(table, name))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json"):
        LatencyTable.load(tmp_path / "bad.json")


def test_build_a_table_on_this_machine_and_check_its_predictor():
    table = build_latency_table(
        MICRO_SPACE, MICRO, device_label="here", seq_len=8, warmup=1, repeats=2, passes=2, threads=1
    )
    assert table.layer_ms.shape == (2, 2) and (table.layer_ms > 0).all() and table.constant_ms > 0
    assert table.widths.tolist() == [32, 64] and table.projection_ms[0, 1] > 0 and table.projection_ms[0, 0] == 0
    assert {"device_name", "threads", "seq_len", "dtype", "statistic", "torch_version"} <= set(table.protocol)
    assert table.protocol["threads"] == 1 and table.protocol["seq_len"] == 8
    check = check_predictor(table, MICRO_SPACE, architectures=4, repeats=2, warmup=1)
    assert check["architectures"] == len(check["rows"]) == 4
    assert {"mean_abs_rel_error", "spearman", "kendall", "max_abs_rel_error"} <= set(check)
    for row in check["rows"]:
        arch = Architecture.from_dict(row["architecture"])
        assert row["predicted_ms"] == pytest.approx(table.predict(arch))
        assert row["rel_error"] == pytest.approx(row["predicted_ms"] / row["measured_ms"] - 1)


# ---- budgets ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "label, value, device",
    [
        ("latency50ms-cpu", 50.0, "cpu"),
        ("latency0.5s-jetson-nano", 500.0, "jetson-nano"),
        ("latency250us-h100", 0.25, "h100"),
    ],
)
def test_latency_budget_parses(label, value, device):
    b = Budget.parse(label)
    assert (b.kind, b.value, b.device, b.unit) == ("latency", pytest.approx(value), device, "ms")


@pytest.mark.parametrize(
    "label, message",
    [
        ("latency50ms", "must name the device"),
        ("flops60G-cpu", "only latency budgets name a device"),
        ("latency50MB-cpu", "'latency50MB-cpu' is not of the form"),
        ("latency-cpu", "'latency-cpu' is not of the form"),
    ],
)
def test_bad_latency_budget_is_named(label, message):
    with pytest.raises(ValueError, match=message):
        Budget.parse(label)


def test_ten_percent_of_a_4gb_device_is_a_memory_budget():
    assert Budget.parse("memory409.6MB").value == pytest.approx(0.1 * 4 * 2**30)


def test_latency_budget_needs_its_device_table(tiny_space, tiny_cost):
    budget = Budget.parse("latency50ms-jetson")
    with pytest.raises(ValueError, match="'jetson'.*no latency table was given"):
        pricing(tiny_cost, budget)
    with pytest.raises(ValueError, match=r"'jetson'.*\['cpu'\]"):
        pricing(tiny_cost, budget, {"cpu": synthetic_table(tiny_space, 128, 512)})
    with pytest.raises(ValueError, match="embed_proj_dim"):
        pricing(CostModel(vocab_size=512, embed_proj_dim=256), budget, synthetic_table(tiny_space, 128, 512, "jetson"))
    with pytest.raises(ValueError, match="latency table"):
        tiny_cost.batch("latency", *tiny_space.decode(tiny_space.sample(np.random.default_rng(0), 2)))


def entropy_table(space):
    """Made-up matrix entropies (building a real table takes far longer than this file's budget)."""
    shapes = {tuple(sorted(s)) for s in space.matrix_shapes()}
    return EntropyLookupTable(EntropyConstants(), {(m, n): m * math.log1p(n) for m, n in shapes})


def test_search_under_a_latency_budget_stays_within_it_and_is_optimal(tiny_space, tiny_cost):
    table = synthetic_table(tiny_space, d=128, vocab=512)
    all_genes = np.stack(
        np.meshgrid(*[np.arange(n) for n in tiny_space.gene_sizes * tiny_space.n_blocks], indexing="ij"), -1
    ).reshape(-1, tiny_space.n_blocks, 3)
    all_genes = all_genes[tiny_space.valid_genes(all_genes)]
    latency = table.batch(*tiny_space.decode(all_genes))
    budget = Budget.parse(f"latency{np.quantile(latency, 0.3):.3f}ms-cpu")
    objective = EntropyObjective.build("entropy", tiny_space, entropy_table(tiny_space))
    found = evolutionary_search(
        tiny_space,
        objective,
        tiny_cost,
        budget,
        iterations=2000,
        population=32,
        parents=4,
        seed=0,
        latency={"cpu": table},
    )
    exact = exact_search(tiny_space, objective, tiny_cost, budget, latency=table)
    for genes in (found.genes, exact.genes):
        assert table.predict(tiny_space.to_architecture(genes)) <= budget.value
    scores = objective(all_genes)
    assert exact.score == pytest.approx(scores[latency <= budget.value].max(), rel=1e-12)  # brute force
    assert found.score <= exact.score + 1e-9
    with pytest.raises(ValueError, match="below the smallest architecture"):
        evolutionary_search(
            tiny_space,
            objective,
            tiny_cost,
            Budget.parse("latency1ms-cpu"),
            iterations=10,
            population=4,
            parents=2,
            seed=0,
            latency=table,
        )


def test_search_record_reports_the_predicted_latency(tiny_space, tiny_cost):
    table = synthetic_table(tiny_space, d=128, vocab=512)
    settings = {"iterations": 500, "population": 16, "parents": 4, "seed": 0, "certify": True, "cpu_watts": 15.0}
    record = search_record(
        tiny_space, entropy_table(tiny_space), tiny_cost, "entropy", "latency4ms-cpu", settings, latency=table
    )
    assert record["budget"] == {
        "label": "latency4ms-cpu",
        "kind": "latency",
        "value": 4.0,
        "unit": "ms",
        "device": "cpu",
    }
    assert record["latency"]["cpu"]["predicted_ms"] <= 4.0
    assert record["latency"]["cpu"]["table"]["device_name"] == "synthetic"
    assert "gap_pct" in record["certificate"]


def scaled(table: LatencyTable, factor: float) -> LatencyTable:
    """The same table measured on a device ``factor`` times slower."""
    return dataclasses.replace(
        table,
        layer_ms=table.layer_ms * factor,
        projection_ms=table.projection_ms * factor,
        constant_ms=table.constant_ms * factor,
    )


def test_relative_latency_budget_is_a_multiple_of_the_smallest_architecture():
    b = Budget.parse("latency1.5x-cpu")
    assert (b.kind, b.value, b.device, b.relative) == ("latency", 1.5, "cpu", True)
    assert b.resolve(8.0).value == 12.0 and not b.resolve(8.0).relative
    assert Budget.parse("latency50ms-cpu").resolve(8.0).value == 50.0  # absolute budgets stay as they are
    with pytest.raises(ValueError, match=r"'latency0.5x-cpu'.*at least 1x"):
        Budget.parse("latency0.5x-cpu")
    with pytest.raises(ValueError, match="'flops2x' is not of the form"):
        Budget.parse("flops2x")


def test_relative_latency_budget_finds_the_same_architecture_on_a_slower_device(tiny_space, tiny_cost):
    """A relative budget is feasible on any device, and scaling every latency leaves its search unchanged; an
    absolute budget chosen on a fast device is infeasible on a slow one."""
    table = synthetic_table(tiny_space, d=128, vocab=512)
    settings = {"iterations": 500, "population": 16, "parents": 4, "seed": 0, "certify": True, "cpu_watts": 15.0}
    records = [
        search_record(
            tiny_space,
            entropy_table(tiny_space),
            tiny_cost,
            "entropy",
            "latency1.6x-cpu",
            settings,
            latency=scaled(table, factor),
        )
        for factor in (1.0, 25.0)
    ]
    smallest = table.predict(tiny_space.to_architecture(np.zeros((tiny_space.n_blocks, 3), dtype=np.int64)))
    for record, factor in zip(records, (1.0, 25.0)):
        assert record["budget"]["multiple"] == 1.6
        assert record["budget"]["smallest_architecture"] == pytest.approx(smallest * factor)
        assert record["budget"]["value"] == pytest.approx(1.6 * smallest * factor)
        assert record["latency"]["cpu"]["predicted_ms"] <= record["budget"]["value"] * (1 + 1e-12)
        assert record["certificate"]["gap_pct"] >= -1e-9
    assert records[0]["architecture"] == records[1]["architecture"]
    assert records[0]["architecture"]["E"] != [64] * tiny_space.n_blocks  # the budget allows more than the minimum
    absolute = f"latency{1.6 * smallest:.4f}ms-cpu"
    with pytest.raises(ValueError, match="below the smallest architecture.*relative budget"):
        search_record(
            tiny_space, entropy_table(tiny_space), tiny_cost, "entropy", absolute, settings, latency=scaled(table, 25.0)
        )
