"""Verdicts on the paper's claims, each computed from an interval, never from one run.

A claim of the paper says that one quantity exceeds another: entropy ranks architectures better than NTK, DSS-Score
or decoder params (Fig. 3); a MeRino model reaches a lower perplexity than the baseline of the same budget (Fig. 5,
Tables 2, 5, 6).  Its verdict is read off the interval of the difference, oriented so that positive means "as the
paper claims": ``holds`` when the whole interval lies above zero, ``fails`` when it lies wholly below, ``undecided at
this scale`` when it contains zero or could not be computed (too few architectures or seeds).

The interval of a difference of rank correlations is a paired bootstrap over the same architectures: both
correlations come from one resample of the architectures, so their common noise cancels.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

HOLDS, FAILS, UNDECIDED = "holds", "fails", "undecided at this scale"


def verdict(lo: float, hi: float) -> str:
    """The verdict of a claim whose oriented difference (positive: as claimed) has the interval [lo, hi]."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return UNDECIDED
    if lo > hi:
        raise ValueError(f"an interval needs lo <= hi, got [{lo}, {hi}]")
    if lo > 0:
        return HOLDS
    if hi < 0:
        return FAILS
    return UNDECIDED


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rho of every row pair of (S, n) arrays (average ranks for ties); NaN where a row is constant."""
    rx, ry = stats.rankdata(x, axis=1), stats.rankdata(y, axis=1)
    rx, ry = rx - rx.mean(1, keepdims=True), ry - ry.mean(1, keepdims=True)
    denom = np.sqrt((rx * rx).sum(1) * (ry * ry).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (rx * ry).sum(1) / denom, np.nan)


def paired_rank_difference(a, b, target, samples: int, confidence: float, seed: int) -> dict:
    """Spearman rho(a, target) - rho(b, target) over the same items, with a percentile interval from ``samples``
    paired bootstrap resamples of the items (a resample where either rho is undefined is dropped)."""
    a, b, target = (np.asarray(v, dtype=np.float64) for v in (a, b, target))
    if not (a.shape == b.shape == target.shape) or a.ndim != 1 or len(a) < 3:
        raise ValueError(
            f"a paired rank difference needs three equally long series of at least 3 values, got {a.shape}, "
            f"{b.shape} and {target.shape}"
        )
    value = stats.spearmanr(a, target).statistic - stats.spearmanr(b, target).statistic
    idx = np.random.default_rng(seed).integers(0, len(a), (samples, len(a)))
    boot = spearman_rows(a[idx], target[idx]) - spearman_rows(b[idx], target[idx])
    boot = boot[np.isfinite(boot)]
    lo, hi = np.percentile(boot, [50 * (1 - confidence), 50 * (1 + confidence)]) if len(boot) else (np.nan, np.nan)
    return {"difference": float(value), "lo": float(lo), "hi": float(hi), "n": len(a), "resamples": len(boot)}
