"""merino.verdicts: a claim's verdict from the interval of its difference, on constructed data: a clear win, a clear
loss, an interval spanning zero; the paired bootstrap of a difference of rank correlations; Fig. 3's summary."""

import numpy as np
import pandas as pd
import pytest

from merino.correlation import summary_table
from merino.verdicts import (
    FAILS,
    HOLDS,
    UNDECIDED,
    paired_rank_difference,
    verdict,
)

BOOT = {"samples": 400, "confidence": 0.95, "seed": 0}


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [(0.1, 0.5, HOLDS), (-0.5, -0.1, FAILS), (-0.2, 0.3, UNDECIDED), (0.0, 0.4, UNDECIDED), (np.nan, 1.0, UNDECIDED)],
)
def test_verdict_reads_the_interval(lo, hi, expected):
    assert verdict(lo, hi) == expected


def test_verdict_refuses_a_reversed_interval():
    with pytest.raises(ValueError, match="lo <= hi"):
        verdict(0.5, 0.1)


def constructed(n: int, noise_a: float, noise_b: float, seed: int = 0):
    """A target and two proxies of it with the given noise (a smaller noise ranks the target better)."""
    rng = np.random.default_rng(seed)
    target = rng.normal(size=n)
    return target + noise_a * rng.normal(size=n), target + noise_b * rng.normal(size=n), target


def test_a_clear_win_a_clear_loss_and_a_tie():
    a, b, target = constructed(80, 0.2, 3.0)
    win = paired_rank_difference(a, b, target, **BOOT)
    assert win["lo"] > 0 and verdict(win["lo"], win["hi"]) == HOLDS and win["n"] == 80
    loss = paired_rank_difference(b, a, target, **BOOT)
    assert loss["hi"] < 0 and verdict(loss["lo"], loss["hi"]) == FAILS
    assert loss["difference"] == pytest.approx(-win["difference"])
    a, b, target = constructed(10, 1.0, 1.0, seed=3)  # equally good proxies, few items
    tie = paired_rank_difference(a, b, target, **BOOT)
    assert tie["lo"] < 0 < tie["hi"] and verdict(tie["lo"], tie["hi"]) == UNDECIDED


def test_the_pairing_cancels_common_noise():
    """Two proxies that differ only slightly: paired resampling sees the difference, which independent
    intervals of each rho would not separate."""
    rng = np.random.default_rng(1)
    target = rng.normal(size=60)
    shared = target + 0.8 * rng.normal(size=60)
    better = shared + 0.05 * (target - shared)  # a little closer to the target, item by item
    d = paired_rank_difference(better, shared, target, **BOOT)
    assert d["lo"] >= 0 and d["hi"] - d["lo"] < 0.1


def test_a_paired_difference_needs_equal_series_of_three():
    with pytest.raises(ValueError, match="at least 3"):
        paired_rank_difference([1, 2], [2, 1], [1, 2], **BOOT)


def test_fig3_summary_decides_each_rival_from_its_paired_interval():
    a, b, target = constructed(40, 0.2, 3.0)
    df = pd.DataFrame(
        {
            "candidate": [f"a{i:03d}" for i in range(40)],
            "score_entropy": a,
            "score_entropy_eq15": -a,  # Eq. 15 made to rank the wrong way: it loses to every rival
            "score_ntk": b,
            "score_dss": -a,  # ranks perfectly the wrong way
            "score_decoder_params": a + 1e-9 * b,
            "val_perplexity": np.exp(-target),
            "val_perplexity_half": np.nan,
        }
    )
    summary = summary_table(df, BOOT, None, "paper: entropy ranks better").set_index("proxy")
    assert summary.loc["ntk", "verdict"] == HOLDS and summary.loc["ntk", "entropy_minus_spearman_lo"] > 0
    assert summary.loc["dss", "verdict"] == HOLDS and summary.loc["dss", "entropy_minus_spearman"] > 1.5
    assert summary.loc["decoder_params", "verdict"] == UNDECIDED  # the same ranking: a difference of 0
    assert pd.isna(summary.loc["entropy", "verdict"])
    assert (summary.loc[["ntk", "decoder_params"], "eq15_verdict"] == FAILS).all()
    assert summary.loc["dss", "eq15_verdict"] == UNDECIDED  # -a against -a: the same ranking
