"""The shared figure style: check_legible finds what a reader cannot read, and every figure passes it."""

import warnings

import numpy as np
import pandas as pd
import pytest

from merino import plotting
from merino.comparisons import plot_nas_comparison
from merino.correlation import PROXIES, plot_correlation
from merino.design_fit import plot as plot_design_fit
from merino.paper import PAPER_BUDGETS, load_reference, plot_accuracy_latency, plot_lookup_error, plot_quantization

plt = plotting.pyplot()


@pytest.fixture
def ax():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.scatter([0, 1, 2], [0, 1, 2])
    yield ax
    plt.close(fig)


def test_clean_figure_has_no_problem(ax):
    ax.annotate("middle", (1, 1), xytext=(0, 8), textcoords="offset points", ha="center")
    plotting.legend_outside(ax, handles=plotting.family_handles(["MeRino"]))
    ax.figure.tight_layout()
    assert plotting.check_legible(ax.figure) == []


def test_label_off_the_axes_is_caught(ax):
    ax.annotate("GPT-width-S110", (0, 1), xytext=(-30, 0), textcoords="offset points", ha="center")
    assert any("'GPT-width-S110' leaves axes 0" in p for p in plotting.check_legible(ax.figure))


def test_overlapping_labels_are_caught(ax):
    ax.annotate("MeRino-52M", (1, 1), xytext=(0, 10), textcoords="offset points", ha="center")
    ax.annotate("Pythia-70M", (1, 1), xytext=(6, 12), textcoords="offset points", ha="center")
    assert "'MeRino-52M' overlaps 'Pythia-70M'" in plotting.check_legible(ax.figure)


def test_legend_on_the_data_and_label_on_a_point_are_caught(ax):
    ax.scatter([1.95], [1.95], label="on the corner point")
    ax.legend(loc="upper right")
    ax.annotate("hides (1, 1)", (0, 0), xytext=(1, 1), ha="center", va="center")
    problems = plotting.check_legible(ax.figure)
    assert any(p.startswith("legend ['on the corner point'] covers data") for p in problems)
    assert "'hides (1, 1)' hides 1 data point(s) of axes 0" in problems


def test_text_off_the_figure_and_crowded_ticks_are_caught(ax):
    ax.set_title("a title far too long for a four-inch figure " * 3)
    ax.set_xticks([0, 0.05, 0.1], ["crowded tick", "labels run", "into each other"])
    problems = plotting.check_legible(ax.figure)
    assert any("runs off the figure" in p for p in problems)
    assert "'crowded tick' overlaps 'labels run'" in problems


def test_place_labels_untangles_the_papers_crowded_panel():
    """Fig. 1's paper panel (MeRino-52M beside Pythia-70M, Cerebras-111M on GPT-2-124M): labels centred above
    each bubble collide; placed ones neither collide, leave the axes nor hide a bubble."""
    ref = load_reference()
    t3 = ref["table3_language_modeling"]["models"]
    models = list(ref["table2_zero_shot"]["models"])
    x, y = [t3[m][1] for m in models], [ref["table2_zero_shot"]["models"][m]["avg"] for m in models]
    for place in (False, True):
        fig, ax = plt.subplots(figsize=(5, 4.5))
        ax.scatter(x, y, s=[1200 * t3[m][0] / 720 for m in models])
        fig.tight_layout()
        if place:
            plotting.place_labels(ax, x, y, models)
        else:
            for m, xi, yi in zip(models, x, y):
                ax.annotate(m, (xi, yi), fontsize=plotting.LABEL_SIZE, ha="center", va="bottom")
        problems = plotting.check_legible(fig)
        plt.close(fig)
        assert (problems == []) == place, problems


def test_family_colours():
    assert plotting.family("MeRino-S60") == "MeRino"
    assert plotting.family("GPT depth-scaled") == plotting.family("GPT-width-S110") == "naive scaling"
    assert plotting.family("Pythia-70M") == "baselines"
    colours = plotting.family_colours(["TE-NAS (NTK)", "MeRino (entropy)", "TF-TAS (DSS-Score)"])
    assert colours["MeRino (entropy)"] == plotting.FAMILY_COLOURS["MeRino"].lower()
    assert len(set(colours.values())) == 3


@pytest.fixture
def legible():
    """Fails the test on any IllegibleFigure warning a figure function raises while writing its file."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", plotting.IllegibleFigure)
        yield


FIG1_OURS = pd.DataFrame(
    {  # an embedded run's Tables 2 and 3 (MeRino-S110 on GPT-depth-S110)
        "model": [
            "MeRino-S60",
            "MeRino-S110",
            "MeRino-S160",
            "GPT-depth-S60",
            "GPT-depth-S110",
            "GPT-depth-S160",
            "GPT-width-S60",
            "GPT-width-S110",
            "GPT-width-S160",
        ],
        "avg": [0.3233, 0.345, 0.335, 0.3517, 0.3417, 0.3117, 0.41, 0.425, 0.4233],
        "latency_ms": [7.35, 8.24, 9.51, 5.55, 7.96, 11.24, 3.31, 4.16, 5.43],
        "flops_G": [0.0587, 0.1092, 0.1593, 0.0587, 0.1028, 0.1541, 0.0545, 0.0839, 0.1195],
    }
)


def test_fig1_legible(tmp_path, legible):
    table2 = FIG1_OURS[["model", "avg"]].assign(source="ours")
    plot_accuracy_latency(
        table2, FIG1_OURS[["model", "latency_ms", "flops_G"]], load_reference(), tmp_path / "fig1.pdf", "cpu"
    )
    assert (tmp_path / "fig1.pdf").stat().st_size > 0


def test_fig2_legible(tmp_path, legible, rng):
    exact = rng.uniform(4e4, 4.2e5, 20)
    rel = rng.normal(1e-4, 2e-4, 20)
    df = pd.DataFrame({"exact_entropy": exact, "lookup_entropy": exact * (1 + rel), "relative_error": rel})
    plot_lookup_error(df, tmp_path / "fig2.pdf", 3e-4)


def test_fig3_legible(tmp_path, legible, rng):
    n = 10
    df = pd.DataFrame(
        {
            "score_entropy": rng.uniform(2e3, 6e3, n),
            "ntk_condition": rng.uniform(100, 330, n),
            "score_dss": np.r_[rng.uniform(2e4, 2.5e4, n - 2), 5e5, 6e5],
            "score_decoder_params": rng.uniform(8e4, 2e5, n),
            "val_perplexity": rng.uniform(35, 95, n),
        }
    )
    summary = pd.DataFrame(
        [
            {
                "proxy": p,
                "split": "all",
                "spearman": -0.4,
                "spearman_lo": -0.99,
                "spearman_hi": 0.35,
                "kendall": -0.3,
                "kendall_lo": -0.95,
                "kendall_hi": 0.16,
            }
            for p in PROXIES
        ]
    )
    note = (
        "10 architectures, 600 training steps each (ours)  |  paper (81 architectures, LM1B): entropy: Spearman "
        "rho > 0.8 and Kendall tau > 0.6; entropy beats NTK, DSS-Score and Decoder-Params"
    )
    plot_correlation(df, summary, tmp_path / "fig3.pdf", note)


def test_fig5_legible(tmp_path, legible, rng):
    methods = [
        "MeRino (entropy)",
        "TE-NAS (NTK)",
        "TF-TAS (DSS-Score)",
        "LTS (decoder params)",
        "GPT depth-scaled",
        "GPT width-scaled",
    ]
    df = pd.DataFrame(
        [
            {"method": m, "budget": f"flops{b}M", "flops_M": b, "avg_acc": rng.uniform(0.31, 0.43)}
            for m in methods
            for b in (60, 110, 160)
        ]
    )
    plot_nas_comparison(df, tmp_path / "fig5.pdf")


def test_fig6_legible(tmp_path, legible, rng):
    df = pd.DataFrame(
        [
            {"model": m, "scheme": s, "avg": rng.uniform(0.32, 0.35)}
            for m in ("MeRino-S60", "MeRino-S110", "MeRino-S160")
            for s in ("fp32", "int8", "int4")
        ]
    )
    plot_quantization(df, tmp_path / "fig6.pdf", load_reference()["figure6_quantization"]["claim"])


def test_design_fit_legible(tmp_path, legible, rng):
    """A dense cloud of constant sets with the three named ones in it (the previous and best close together)."""
    sets = [f"grid {k}" for k in range(150)] + ["default", "preset table8_fit", "previous"]
    summary = pd.DataFrame(
        {
            "set": sets,
            "objective": rng.choice(["entropy", "eq15", "eq15_exp"], len(sets)),
            "distance_steps": np.r_[rng.integers(20, 92, 150), 72, 29, 50],
            "max_gap_pct": np.r_[rng.uniform(4, 60, 150), 22.5, 5.0, 8.8],
        }
    )
    df = pd.DataFrame([{"set": s, "budget": b, "gap_pct": rng.uniform(2, 23)} for s in sets for b in PAPER_BUDGETS])
    named = {"default": "default", "preset table8_fit, best": "preset table8_fit", "previous": "previous"}
    plot_design_fit(df, summary, named, tmp_path / "design_fit.pdf")
