"""The correlation study (paper Sec. 4.1, Fig. 3; perplexities of Table 1): architectures sampled
uniformly, each trained with the same budget, and the rank correlation (Spearman rho, Kendall tau)
of every training-free proxy (``merino.proxies``) with -perplexity, with bootstrap confidence
intervals over the architectures.

Honesty rules built in: the entropy constants come from config and are not fitted to the study;
if ``calibration`` is on, alpha and kappa are chosen on one seeded half of the architectures and
every proxy is reported on the other half as well.  The ranking is only meaningful if training
was long enough to settle it, so the study also reports the rank correlation between the
perplexities at half and at full training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from . import plotting
from .space import Architecture, SearchSpace
from .verdicts import paired_rank_difference, spearman_rows, verdict

RIVALS = ("ntk", "dss", "decoder_params")  # Fig. 3's claim: entropy ranks better than each of these
PROXIES = {
    "entropy": "Entropy (ours: alpha, gamma)",
    "ntk": "NTK condition number (TE-NAS)",
    "dss": "DSS-Score (TF-TAS)",
    "decoder_params": "Decoder params (LTS)",
}
ENTROPY_VARIANTS = {
    "entropy_eq15": "Eq. 15 (per-block depth penalty, alpha; config's constants)",
    "entropy_no_alpha": "Entropy with gamma, no alpha",
    "entropy_plain": "Entropy, no gamma, no alpha",
}


def sample_architecture(space: SearchSpace, seed: int, index: int) -> Architecture:
    """Architecture ``index`` of the study, drawn uniformly from ``space`` with its own seeded stream,
    so adding architectures to the study leaves the existing ones (and their trained models) as they are."""
    genes = space.sample(np.random.default_rng([seed, index]), 1)[0]
    return space.to_architecture(genes, name=f"a{index:03d}")


# ---- rank correlation with bootstrap confidence intervals ----------------------------------------------
def rank_correlation(x, y, samples: int, confidence: float, seed: int) -> dict:
    """Spearman rho and Kendall tau-b of x against y, each with a percentile bootstrap interval over
    ``samples`` resamples of the pairs (resamples where either side is constant are dropped)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3:
        raise ValueError(
            f"rank correlation needs two equally long series of at least 3 values, got {x.shape} and {y.shape}"
        )
    idx = np.random.default_rng(seed).integers(0, len(x), (samples, len(x)))
    boots = {
        "spearman": (stats.spearmanr(x, y).statistic, spearman_rows(x[idx], y[idx])),
        "kendall": (stats.kendalltau(x, y).statistic, np.array([stats.kendalltau(x[i], y[i]).statistic for i in idx])),
    }
    lo, hi = 50 * (1 - confidence), 50 * (1 + confidence)
    out = {"n": len(x)}
    for name, (value, boot) in boots.items():
        boot = boot[np.isfinite(boot)]
        out[name] = float(value)
        out[f"{name}_lo"], out[f"{name}_hi"] = np.percentile(boot, [lo, hi]).tolist() if len(boot) else (np.nan, np.nan)
    return out


# ---- the study table ------------------------------------------------------------------------------------
def study_frame(records: list[dict]) -> pd.DataFrame:
    """One row per architecture: structure, raw proxies, oriented scores, perplexity at half and full
    training.  A record is a proxies file (``candidate``, ``architecture``, ``scores``, ``raw``) with the
    trained model's ``metrics`` added."""
    rows = []
    for r in records:
        arch = Architecture.from_dict(r["architecture"], name=r["candidate"])
        history = sorted(r["metrics"]["val_history"], key=lambda h: h["step"])
        half = history[-2] if len(history) > 1 else {"step": None, "val_perplexity": np.nan}
        raw = r["raw"]
        rows.append(
            {
                "candidate": r["candidate"],
                "E": "-".join(map(str, arch.widths)),
                "F": "-".join(map(str, arch.ffn_dims)),
                "L": "-".join(map(str, arch.depths)),
                **{f"score_{k}": v for k, v in r["scores"].items()},
                "entropy_mhsa": raw["entropy_mhsa"],
                "entropy_ffn": raw["entropy_ffn"],
                "gamma": raw["entropy_gamma"],
                "ntk_condition": raw["ntk_condition"],
                "dss": raw["dss"],
                "decoder_params": raw["decoder_params"],
                "steps": r["metrics"]["steps"],
                "half_step": half["step"],
                "val_perplexity_half": half["val_perplexity"],
                "val_perplexity": r["metrics"]["val_perplexity"],
            }
        )
    return pd.DataFrame(rows)


def entropy_score(df: pd.DataFrame, gamma_strength: float, alpha_mhsa: float, alpha_ffn: float = 1.0) -> np.ndarray:
    """The global form (objective ``entropy``) from the stored breakdown: (alpha_MHSA H_MHSA + alpha_FFN H_FFN)
    exp(-kappa gamma)."""
    weighted = alpha_mhsa * df["entropy_mhsa"].to_numpy() + alpha_ffn * df["entropy_ffn"].to_numpy()
    return weighted * np.exp(-gamma_strength * df["gamma"].to_numpy())


def calibrate(df: pd.DataFrame, grid: dict, fraction: float, seed: int) -> dict:
    """Choose kappa and alpha_MHSA (alpha_FFN = 1; only the ratio matters) that maximise Spearman rho
    on a seeded ``fraction`` of the architectures; the rest is the held-out split."""
    order = np.random.default_rng(seed).permutation(len(df))
    n_cal = round(fraction * len(df))
    if n_cal < 3 or len(df) - n_cal < 3:
        raise ValueError(
            f"calibration needs at least 3 architectures on each side; {len(df)} architectures with "
            f"fraction {fraction} give {n_cal} and {len(df) - n_cal}: add architectures or turn "
            f"calibration off"
        )
    cal = df.iloc[np.sort(order[:n_cal])]
    target = -cal["val_perplexity"].to_numpy()
    best = None
    for kappa in grid["gamma_strength"]:
        for alpha in grid["alpha_mhsa"]:
            rho = float(stats.spearmanr(entropy_score(cal, kappa, alpha), target).statistic)
            if best is None or rho > best["calibration_spearman"] + 1e-12:
                best = {"gamma_strength": kappa, "alpha_mhsa": alpha, "calibration_spearman": rho}
    return {
        **best,
        "calibration": cal["candidate"].tolist(),
        "held_out": df.iloc[np.sort(order[n_cal:])]["candidate"].tolist(),
    }


def add_entropy_variants(df: pd.DataFrame, constants: dict) -> pd.DataFrame:
    """Scores of the Table 6 entropy variants (no alpha; neither alpha nor gamma) with the config's kappa."""
    out = df.copy()
    out["score_entropy_no_alpha"] = entropy_score(df, constants["gamma_strength"], 1.0, 1.0)
    out["score_entropy_plain"] = entropy_score(df, 0.0, 1.0, 1.0)
    return out


ENTROPY_FORMS = {"entropy": "", "entropy_eq15": "eq15_"}  # each decided against every rival; column prefix


def rival_difference(part: pd.DataFrame, proxy: str, bootstrap: dict) -> dict:
    """Fig. 3's claim for one rival proxy: rho(entropy) - rho(proxy) against -perplexity over the same
    architectures, its paired bootstrap interval, and the verdict read off it (merino.verdicts); for the global
    form (``entropy_minus_spearman``, ``verdict``) and for Eq. 15 (``eq15_entropy_minus_spearman``,
    ``eq15_verdict``)."""
    if proxy not in RIVALS:
        return {}
    out = {}
    for form, prefix in ENTROPY_FORMS.items():
        if f"score_{form}" not in part:
            continue
        d = paired_rank_difference(
            part[f"score_{form}"],
            part[f"score_{proxy}"],
            -part["val_perplexity"].to_numpy(),
            bootstrap["samples"],
            bootstrap["confidence"],
            bootstrap["seed"],
        )
        out |= {
            f"{prefix}entropy_minus_spearman": d["difference"],
            f"{prefix}entropy_minus_spearman_lo": d["lo"],
            f"{prefix}entropy_minus_spearman_hi": d["hi"],
            f"{prefix}verdict": verdict(d["lo"], d["hi"]),
        }
    return out


def summary_table(df: pd.DataFrame, bootstrap: dict, calibration: dict | None, claim: str) -> pd.DataFrame:
    """Spearman rho / Kendall tau (with intervals) of every proxy against -perplexity, on all
    architectures and, with calibration, on the held-out split; plus half- vs full-training perplexity.
    Each rival proxy's row carries Fig. 3's claim decided: rho(entropy) - rho(proxy) with its paired
    bootstrap interval and verdict."""
    kw = {"samples": bootstrap["samples"], "confidence": bootstrap["confidence"], "seed": bootstrap["seed"]}
    labels = {**PROXIES, **ENTROPY_VARIANTS}
    splits = [("all", df, "none (constants from config)")]
    if calibration is not None:
        held = df[df["candidate"].isin(calibration["held_out"])].copy()
        held["score_entropy_calibrated"] = entropy_score(held, calibration["gamma_strength"], calibration["alpha_mhsa"])
        labels["entropy_calibrated"] = "Entropy, alpha and kappa tuned on the calibration split"
        splits.append(
            (
                "held-out",
                held,
                f"kappa={calibration['gamma_strength']:g}, alpha_mhsa="
                f"{calibration['alpha_mhsa']:g} chosen on {len(calibration['calibration'])} "
                f"other architectures",
            )
        )
    rows = []
    for split, part, tuned in splits:
        target = -part["val_perplexity"].to_numpy()
        for proxy, label in labels.items():
            if f"score_{proxy}" not in part:
                continue
            rows.append(
                {
                    "proxy": proxy,
                    "label": label,
                    "split": split,
                    **rank_correlation(part[f"score_{proxy}"], target, **kw),
                    "calibration": tuned if proxy == "entropy_calibrated" else "none",
                    "paper_claim": claim if proxy in ENTROPY_FORMS or proxy in RIVALS else "",
                    **rival_difference(part, proxy, bootstrap),
                }
            )
        if part["val_perplexity_half"].notna().all():
            rows.append(
                {
                    "proxy": "half_vs_full_training",
                    "split": split,
                    "label": f"perplexity after {int(part['half_step'].iloc[0])} vs {int(part['steps'].iloc[0])} steps",
                    **rank_correlation(-part["val_perplexity_half"], target, **kw),
                    "calibration": "none",
                    "paper_claim": "",
                }
            )
    return pd.DataFrame(rows)


def plot_correlation(df: pd.DataFrame, summary: pd.DataFrame, path: str | Path, note: str) -> None:
    """Figure 3: one panel per proxy, perplexity against the proxy, rho and tau (with intervals) in the title."""
    stats_all = summary[summary["split"] == "all"].set_index("proxy")
    with plotting.figure(path, 1, len(PROXIES), figsize=(4 * len(PROXIES), 4.2), sharey=True) as (fig, axes):
        for ax, (proxy, label) in zip(axes, PROXIES.items()):
            x = df["ntk_condition"] if proxy == "ntk" else df[f"score_{proxy}"]
            colour = plotting.FAMILY_COLOURS["MeRino" if proxy.startswith("entropy") else "baselines"]
            ax.scatter(x, df["val_perplexity"], s=plotting.MARKER_AREA, color=colour)
            if proxy == "ntk":
                ax.set_xscale("log")
                ax.invert_xaxis()  # lower condition number is the better prediction: right is better everywhere
                ax.set_xlabel("NTK condition number (axis reversed)")
            else:
                ax.set_xlabel(label)
            if proxy == "dss":
                ax.set_xscale("log")  # the score spans orders of magnitude
            elif proxy != "ntk":
                ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
            s = stats_all.loc[proxy]
            ax.set_title(
                f"{label}\nrho={s.spearman:.2f} [{s.spearman_lo:.2f}, {s.spearman_hi:.2f}]  "
                f"tau={s.kendall:.2f} [{s.kendall_lo:.2f}, {s.kendall_hi:.2f}]"
            )
        axes[0].set_ylabel("validation perplexity")
        axes[0].set_yscale("log")
        for ax in axes:
            for axis in (ax.xaxis, ax.yaxis):
                if axis.get_scale() == "log":
                    plotting.log_axis(axis)
        fig.suptitle(plotting.wrap(note, fig, "figure.titlesize"))
        plotting.layout(fig)


def table1_with_perplexity(entropy_table: pd.DataFrame, perplexity: dict[str, float], scale: str) -> pd.DataFrame:
    """Table 1 complete: the entropy columns (paper scale) and our trained perplexity beside the paper's."""
    out = entropy_table.copy()
    out["perplexity"] = [round(perplexity[m], 2) for m in out["model"]]
    out["perplexity_setting"] = scale
    cols = [c for c in out.columns if c != "paper_perplexity"] + ["paper_perplexity"]
    return out[cols]
