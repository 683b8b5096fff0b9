"""The correlation study's analysis: sampling per index, rank correlations with bootstrap intervals,
calibration on one split reported on the other, and the summary table."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from merino.correlation import (
    add_entropy_variants,
    calibrate,
    entropy_score,
    rank_correlation,
    sample_architecture,
    study_frame,
    summary_table,
    table1_with_perplexity,
)
from merino.space import SearchSpace

SPACE = SearchSpace.from_config(
    {
        "n_blocks": 3,
        "embed_dim": {"min": 64, "max": 192, "step": 64},
        "ffn_dim": {"min": 128, "max": 512, "step": 128},
        "depths": [1, 2, 3],
        "non_decreasing_width": True,
    },
    64,
)
BOOT = {"samples": 300, "confidence": 0.9, "seed": 0}


def test_architecture_i_depends_on_seed_and_index_only():
    archs = [sample_architecture(SPACE, 7, i) for i in range(40)]
    assert [a.to_dict() for a in archs[:5]] == [sample_architecture(SPACE, 7, i).to_dict() for i in range(5)]
    assert all(SPACE.check(a) for a in archs) and archs[3].name == "a003"
    assert len({str(a) for a in archs}) > 30  # uniform draws over 6^3 * 4^3 * 3^3 structures rarely repeat
    assert [sample_architecture(SPACE, 8, i).to_dict() for i in range(5)] != [a.to_dict() for a in archs[:5]]


def test_rank_correlation_matches_scipy_and_brackets_its_estimate():
    rng = np.random.default_rng(0)
    x = rng.normal(size=30)
    y = x + rng.normal(scale=0.8, size=30)
    r = rank_correlation(x, y, **BOOT)
    assert r["n"] == 30
    assert r["spearman"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert r["kendall"] == pytest.approx(stats.kendalltau(x, y).statistic)
    assert r["spearman_lo"] < r["spearman"] < r["spearman_hi"] and r["kendall_lo"] < r["kendall"] < r["kendall_hi"]
    assert r == rank_correlation(x, y, **BOOT)  # seeded
    perfect = rank_correlation(x, np.exp(x), **BOOT)
    assert perfect["spearman"] == perfect["kendall"] == perfect["spearman_lo"] == perfect["kendall_hi"] == 1.0
    assert rank_correlation(x, -x, **BOOT)["kendall"] == -1.0
    with pytest.raises(ValueError, match="equally long"):
        rank_correlation(x, y[:-1], **BOOT)


def _study(n=24, kappa=4.0, alpha=0.5, seed=0):
    """Synthetic study whose perplexity is a decreasing function of the entropy with (kappa, alpha)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "candidate": [f"a{i:03d}" for i in range(n)],
            "entropy_mhsa": rng.uniform(100, 1000, n),
            "entropy_ffn": rng.uniform(100, 1000, n),
            "gamma": rng.uniform(0.0, 0.3, n),
        }
    )
    df["val_perplexity"] = 1e5 / entropy_score(df, kappa, alpha)
    df["val_perplexity_half"] = df["val_perplexity"] * rng.uniform(1.2, 1.3, n)
    df["half_step"], df["steps"] = 50, 100
    for proxy in ("entropy", "ntk", "dss", "decoder_params"):
        df[f"score_{proxy}"] = rng.normal(size=n)
    return df


def test_calibration_recovers_the_constants_on_its_split_and_holds_out_the_rest():
    df = _study()
    grid = {"gamma_strength": [0, 1, 4, 16], "alpha_mhsa": [0.25, 0.5, 1.0]}
    cal = calibrate(df, grid, fraction=0.5, seed=1)
    assert (cal["gamma_strength"], cal["alpha_mhsa"]) == (4, 0.5) and cal["calibration_spearman"] == pytest.approx(1)
    assert len(cal["calibration"]) == len(cal["held_out"]) == 12
    assert sorted(cal["calibration"] + cal["held_out"]) == df["candidate"].tolist()
    with pytest.raises(ValueError, match="at least 3 architectures on each side"):
        calibrate(df.head(5), grid, fraction=0.5, seed=1)


def test_summary_reports_every_proxy_on_both_splits_and_the_training_stability():
    df = add_entropy_variants(_study(), {"gamma_strength": 8.0})
    cal = calibrate(df, {"gamma_strength": [0, 4], "alpha_mhsa": [0.5, 1.0]}, 0.5, 0)
    s = summary_table(df, BOOT, cal, claim="rho > 0.8")
    all_rows, held = s[s["split"] == "all"], s[s["split"] == "held-out"]
    expected = {"entropy", "ntk", "dss", "decoder_params", "entropy_no_alpha", "entropy_plain", "half_vs_full_training"}
    assert set(all_rows["proxy"]) == expected and set(held["proxy"]) == expected | {"entropy_calibrated"}
    assert (held["n"] == 12).all() and (all_rows["n"] == 24).all()
    calibrated = held.set_index("proxy").loc["entropy_calibrated"]
    assert (
        calibrated["spearman"] == pytest.approx(1.0) and "chosen on 12 other architectures" in calibrated["calibration"]
    )
    assert all_rows.set_index("proxy").loc["half_vs_full_training", "spearman"] == pytest.approx(
        stats.spearmanr(df["val_perplexity_half"], df["val_perplexity"]).statistic
    )
    assert s.set_index(["proxy", "split"]).loc[("entropy", "all"), "paper_claim"] == "rho > 0.8"
    assert "held-out" not in set(summary_table(df, BOOT, None, "")["split"])


def test_study_frame_reads_the_job_outputs():
    record = {
        "candidate": "a004",
        "architecture": {"E": [64, 128], "F": [128, 256], "L": [1, 2]},
        "scores": {"entropy": 5.0, "ntk": -30.0, "dss": 2.0, "decoder_params": 1e5},
        "raw": {
            "entropy_mhsa": 1.0,
            "entropy_ffn": 2.0,
            "entropy_gamma": 0.1,
            "ntk_condition": 30.0,
            "dss": 2.0,
            "decoder_params": 100000,
        },
        "metrics": {
            "steps": 10,
            "val_perplexity": 50.0,
            "val_history": [{"step": 10, "val_perplexity": 50.0}, {"step": 5, "val_perplexity": 80.0}],
        },
    }
    row = study_frame([record]).iloc[0]
    assert (row["E"], row["L"], row["half_step"], row["val_perplexity_half"]) == ("64-128", "1-2", 5, 80.0)
    assert row["score_ntk"] == -30.0 and row["val_perplexity"] == 50.0


def test_table1_puts_our_perplexity_beside_the_papers():
    entropy = pd.DataFrame({"model": ["wide", "deep"], "entropy": [1.0, 2.0], "paper_perplexity": [53.7, 71.9]})
    t = table1_with_perplexity(entropy, {"deep": 90.123, "wide": 80.0}, "tiny")
    assert t.columns[-1] == "paper_perplexity" and t["perplexity"].tolist() == [80.0, 90.12]
