"""Fig. 5 and Tables 4-6 from evaluation summaries: numbers carried through, the paper's beside, and each
claim judged from our numbers (both outcomes)."""

import pytest

from merino.comparisons import nas_comparison, plot_nas_comparison, table4, table5, table6
from merino.paper import load_reference
from merino.space import Architecture


def summary(*accs, ppl=9.0):
    """An evaluation summary: multiple-choice tasks with `acc`, and a perplexity task without."""
    return {
        **{f"task{i}": {"acc": a, "acc_stderr": 0.01} for i, a in enumerate(accs)},
        "heldout": {"byte_perplexity": ppl, "word_perplexity": 100.0},
    }


def cost(params, flops):
    return {"params": params, "flops": flops, "seq_len": 64}


REFERENCE = load_reference()


def test_fig5_marks_the_best_method_per_budget_and_the_claim(tmp_path):
    methods = [{"method": "MeRino", "models": ["m60", "m110"]}, {"method": "NTK", "models": ["n60", "n110"]}]
    budgets = {"m60": "flops60M", "m110": "flops110M", "n60": "flops60M", "n110": "flops110M"}
    summaries = {
        "m60": summary(0.5, 0.3),
        "m110": summary(0.4, 0.3),
        "n60": summary(0.3, 0.3),
        "n110": summary(0.6, 0.3),
    }
    costs = {m: cost(1e6, 60e6 if "60" in m else 110e6) for m in summaries}
    df = nas_comparison(methods, budgets, summaries, costs, "acc").set_index("model")
    assert df.loc["m60", "avg_acc"] == pytest.approx(0.4) and df.loc["n110", "avg_acc"] == pytest.approx(0.45)
    assert df["best_at_budget"].to_dict() == {"m60": True, "m110": False, "n60": False, "n110": True}
    assert df["claim_holds"].to_dict() == {"m60": True, "m110": False, "n60": True, "n110": False}
    plot_nas_comparison(df.reset_index(), tmp_path / "fig5.pdf")
    assert (tmp_path / "fig5.pdf").stat().st_size > 1000


def search(objective, wall_s, energy_Wh, computations):
    return {
        "objective": objective,
        "budget": {"label": "flops110M"},
        "search_cost": {
            "wall_s": wall_s,
            "cpu_s": wall_s,
            "energy_Wh": energy_Wh,
            "energy_source": "estimated",
            "mutations": 256,
            "evaluations": 300,
            "objective_computations": computations,
        },
    }


@pytest.mark.parametrize("ntk_acc, holds", [(0.40, True), (0.55, False)])
def test_table4_costs_relative_to_the_entropy_search_with_the_papers(ntk_acc, holds):
    rows = [{"paper": "MeRino", "model": "m"}, {"paper": "TE-NAS", "model": "n"}]
    searches = {"m": search("entropy", 2.0, 0.01, 40000), "n": search("ntk", 30.0, 0.1, 200)}
    df = table4(rows, searches, {"m": summary(0.5), "n": summary(ntk_acc)}, REFERENCE, "acc").set_index("method")
    assert df.loc["TE-NAS", "time_vs_first"] == pytest.approx(15.0)
    assert df.loc["TE-NAS", "energy_vs_first"] == pytest.approx(10.0)
    assert df.loc["TE-NAS", "paper_time_vs_first"] == pytest.approx(1.2 / 0.05)
    assert df.loc["TE-NAS", "ms_per_computation"] == pytest.approx(150.0)
    assert df.loc["MeRino", "paper_energy_Wh"] == 0.75 and df.loc["TE-NAS", "paper_avg_acc"] == 0.389
    assert bool(df.loc["TE-NAS", "claim_holds"]) is holds


def test_table5_pairs_each_target_with_and_without_sharing():
    rows = [{"paper": "60G", "with": "s", "without": "u"}, {"paper": "110G", "with": "s2", "without": "u2"}]
    summaries = {"s": summary(0.50), "u": summary(0.505), "s2": summary(0.40), "u2": summary(0.45)}
    costs = {"s": cost(0.5e6, 60e6), "u": cost(0.8e6, 60e6), "s2": cost(0.6e6, 110e6), "u2": cost(0.9e6, 110e6)}
    df = table5(rows, summaries, costs, REFERENCE, "acc")
    assert list(zip(df.target, df.sharing)) == [
        ("60G", "without"),
        ("60G", "with"),
        ("110G", "without"),
        ("110G", "with"),
    ]
    by = df.set_index(["target", "sharing"])
    assert by.loc[("60G", "without"), "paper_params_M"] == 59 and by.loc[("110G", "with"), "paper_avg_acc"] == 0.392
    assert by.loc[("60G", "with"), "params_M"] == 0.5
    assert by.loc[("60G", "with"), "acc_with_minus_without"] == pytest.approx(-0.005)
    assert by.xs("60G")["claim_holds"].all() and not by.xs("110G")["claim_holds"].any()


@pytest.mark.parametrize("accs, holds", [((0.3, 0.35, 0.4), True), ((0.3, 0.45, 0.4), False)])
def test_table6_orders_the_ablation_and_judges_the_claim(accs, holds):
    models = {"none": "a", "gamma": "b", "gamma_alpha": "c"}
    archs = {m: Architecture.from_dict({"E": [64, 128], "F": [128, 256], "L": [2, 1]}) for m in "abc"}
    summaries = {m: summary(a) for m, a in zip("abc", accs)}
    df = table6(models, archs, summaries, {m: cost(1e6, 1e8) for m in "abc"}, REFERENCE, "acc")
    assert df["ablation"].tolist() == ["none", "gamma", "gamma_alpha"]
    assert df["avg_acc"].tolist() == pytest.approx(list(accs))
    assert df["E"].iloc[0] == "64-128" and df["L"].iloc[0] == "2-1"
    assert df["paper_avg_acc"].tolist() == [0.360, 0.384, 0.392]
    assert df["claim_holds"].tolist() == [holds] * 3


def test_average_accuracy_needs_the_metric():
    from merino.paper import average_accuracy

    with pytest.raises(ValueError, match="acc_norm"):
        average_accuracy(summary(0.5), "acc_norm")
