"""Paper tables and figures, ours beside the published numbers (``reference/published.yaml``).

The reference file holds the paper's figures as data; they are printed beside our results and
never used as results.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from . import plotting
from .cost import CostModel
from .entropy import EntropyLookupTable, architecture_entropy, objective_score
from .space import Architecture, Block

REFERENCE = Path(__file__).resolve().parent / "reference" / "published.yaml"
# paper Table 3 / Table 8: the structure searched at each FLOPs target
PAPER_BUDGETS = {"flops60G": "MeRino-52M", "flops110G": "MeRino-61M", "flops160G": "MeRino-64M"}


def load_reference(path: str | Path = REFERENCE) -> dict:
    return yaml.safe_load(Path(path).read_text())


def paper_structures(reference: dict) -> dict[str, Architecture]:
    """Paper Table 8 structures (FFN given as ratio R_i)."""
    return {name: Architecture.from_dict(d, name=name) for name, d in reference["table8_structures"].items()}


def structure_columns(arch: Architecture) -> dict:
    return {
        "E": "-".join(map(str, arch.widths)),
        "F": "-".join(map(str, arch.ffn_dims)),
        "R": "-".join(f"{f / e:g}" for f, e in zip(arch.ffn_dims, arch.widths)),
        "L": "-".join(map(str, arch.depths)),
    }


def table8(
    reference: dict,
    cost: CostModel,
    table: EntropyLookupTable,
    searched: dict[str, dict],
    objective: str,
    fit: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Table 8 (and the params of Table 5, FLOPs of Table 3): per FLOPs target, the paper's structure
    priced by our cost model beside the paper's figures; our search under the configured objective and
    constants (``searched``: budget label -> search result JSON); and, from the design fit
    (:mod:`merino.design_fit`, ``fit``: design_fit.csv), the exact optimum under each preset and under
    the best fitted set.  ``gap_to_optimum_pct``: how far the paper's structure scores below the row's
    optimum under the row's constants (0 on the paper row)."""
    structures = paper_structures(reference)
    t3 = reference["table3_language_modeling"]["models"]
    t5 = reference["table5_parameter_sharing"]
    rows = []
    for budget, name in PAPER_BUDGETS.items():
        target = budget.removeprefix("flops")
        paper = {
            "paper_params_shared_M": float(reference["table2_zero_shot"]["models"][name]["params_M"]),
            "paper_params_unshared_M": float(t5[target]["without"]["params_M"]),
            "paper_flops_G": float(t3[name][0]),
        }
        candidates = [("paper structure", structures[name], {})]
        if budget in searched:
            result = searched[budget]
            cert = result.get("certificate") or {}
            optimum = cert.get("optimum", result["score"])
            gap = 100 * (optimum - objective_score(structures[name], table, objective)) / abs(optimum)
            candidates.append(
                (
                    f"searched ({result['objective']}, configured constants)",
                    Architecture.from_dict(result["architecture"]),
                    {"ea_gap_to_optimum_pct": cert.get("gap_pct"), "gap_to_optimum_pct": gap},
                )
            )
        if fit is not None:
            tagged = fit[(fit["budget"] == budget) & fit["named"].astype(str).str.contains(r"preset |best")]
            for _, row in tagged.iterrows():  # one row per set: a preset that is also the best fit carries both tags
                arch = Architecture.from_dict(
                    {"E": _ints(row["optimum_E"]), "F": _ints(row["optimum_F"]), "L": _ints(row["optimum_L"])}
                )
                labels = [t for t in row["named"].split(", ") if t.startswith("preset ") or t == "best"]
                candidates.append(
                    (
                        f"optimum ({', '.join(labels)}: {row['objective']}, set {row['set']})",
                        arch,
                        {"gap_to_optimum_pct": row["gap_pct"], "budget_used_G": row["budget_used_G"]},
                    )
                )
        for source, arch, extra in candidates:
            s = cost.summary(arch)
            h = architecture_entropy(arch, table, objective)
            rows.append(
                {
                    "model": name,
                    "budget": budget,
                    "source": source,
                    **structure_columns(arch),
                    "params_shared_M": round(s["params_shared"] / 1e6, 2),
                    "params_unshared_M": round(s["params_unshared"] / 1e6, 2),
                    "flops_G": round(s["flops"] / 1e9, 2),
                    "entropy": round(h.entropy, 1),
                    "gamma": round(h.gamma, 4),
                    f"objective_{objective}": round(h.objective, 1),
                    "gap_to_optimum_pct": extra.get("gap_to_optimum_pct", 0.0 if source == "paper structure" else None),
                    "ea_gap_to_optimum_pct": extra.get("ea_gap_to_optimum_pct"),
                    "budget_used_G": extra.get("budget_used_G"),
                    **paper,
                    "params_shared_rel_diff_pct": round(
                        100 * (s["params_shared"] / 1e6 / paper["paper_params_shared_M"] - 1), 2
                    ),
                    "flops_rel_diff_pct": round(100 * (s["flops"] / 1e9 / paper["paper_flops_G"] - 1), 2),
                }
            )
    return pd.DataFrame(rows)


def _ints(joined: str) -> list[int]:
    return [int(v) for v in str(joined).split("-")]


def table1_models(reference: dict, ffn_ratio: int = 4) -> dict[str, Architecture]:
    """Table 1's 'wide' (L=1, E=256) and 'deep' (L=24, E=64) models, one block each, FFN = ffn_ratio * E."""
    t = reference["table1_wide_vs_deep"]
    cols = t["columns"]
    out = {}
    for name in ("wide", "deep"):
        row = dict(zip(cols, t[name]))
        e, l = int(row["E"]), int(row["L"])
        out[name] = Architecture((Block(e, ffn_ratio * e, l),), name=name)
    return out


def table1(reference: dict, cost: CostModel, table: EntropyLookupTable, ffn_ratio: int = 4) -> pd.DataFrame:
    """Table 1 entropy columns: entropy, effectiveness gamma and entropy with gamma, paper beside.
    (The perplexity columns come from the correlation study's trained models.)"""
    t = reference["table1_wide_vs_deep"]
    rows = []
    for name, arch in table1_models(reference, ffn_ratio).items():
        paper = dict(zip(t["columns"], t[name]))
        h = architecture_entropy(arch, table)
        rows.append(
            {
                "model": name,
                "L": arch.n_layers,
                "E": arch.widths[0],
                "F": arch.ffn_dims[0],
                "params_M": round(cost.params(arch) / 1e6, 2),
                "entropy": round(h.entropy, 1),
                "gamma": round(h.gamma, 4),
                "entropy_with_gamma": round(h.entropy_with_gamma, 1),
                "paper_params_M": paper["params_M"],
                "paper_entropy": paper["entropy"],
                "paper_gamma": paper["effective_gamma"],
                "paper_entropy_with_gamma": paper["entropy_with_gamma"],
                "paper_perplexity": paper["perplexity"],
            }
        )
    return pd.DataFrame(rows)


def plot_lookup_error(df: pd.DataFrame, path: str | Path, paper_mean_error: float) -> None:
    """Figure 2: lookup-table entropy against exact SVD entropy of freshly initialised models."""
    from matplotlib.ticker import MaxNLocator

    rel = df["relative_error"].abs()
    with plotting.figure(path, 1, 2, figsize=(10, 4)) as (fig, (ax1, ax2)):
        ax1.scatter(df["exact_entropy"], df["lookup_entropy"], s=plotting.MARKER_AREA, label="sampled architecture")
        cols = ["exact_entropy", "lookup_entropy"]
        lo, hi = df[cols].min().min(), df[cols].max().max()
        ax1.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="lookup = exact")
        ax1.set_xlabel("exact entropy (SVD of fresh weights)")
        ax1.set_ylabel("lookup-table entropy")
        ax1.set_title(f"{len(df)} sampled architectures")
        plotting.legend_outside(ax1)
        ax2.hist(100 * df["relative_error"], bins=30)
        ax2.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax2.set_xlabel("relative error (%)")
        ax2.set_ylabel("architectures")
        ax2.set_title(
            f"mean |err| {100 * rel.mean():.4f}%, max {100 * rel.max():.4f}%\n"
            f"(paper: mean {100 * paper_mean_error:.2f}%)"
        )
        plotting.layout(fig)


def lookup_error_summary(df: pd.DataFrame) -> dict:
    rel = df["relative_error"].abs()
    return {
        "architectures": len(df),
        "mean_abs_relative_error": float(rel.mean()),
        "max_abs_relative_error": float(rel.max()),
        "median_abs_relative_error": float(np.median(rel)),
    }


def table2(
    summaries: dict[str, dict], reference: dict, metric: str, paper_names: dict[str, str], params: dict[str, int]
) -> pd.DataFrame:
    """Table 2: zero-shot accuracy per multiple-choice task and their average, per model, and the paper's rows.

    ``summaries`` maps a model to its evaluation summary (``{task: {metric: value}}``); ``paper_names``
    maps a model to the paper's model it is compared with (its paper average goes beside ours).  The
    paper's own rows follow ours (source ``paper``), on the paper's twelve tasks."""
    t2 = reference["table2_zero_shot"]
    rows = []
    for model, summary in summaries.items():
        acc = {task: m[metric] for task, m in summary.items() if metric in m}
        paper = t2["models"].get(paper_names.get(model, model))
        rows.append(
            {
                "model": model,
                "source": "ours",
                "params_M": round(params[model] / 1e6, 2),
                **acc,
                "avg": float(np.mean(list(acc.values()))) if acc else np.nan,
                "paper_model": paper_names.get(model, model) if paper else None,
                "avg_paper": paper["avg"] if paper else np.nan,
            }
        )
    for name, paper in t2["models"].items():
        rows.append(
            {
                "model": name,
                "source": "paper",
                "params_M": float(paper["params_M"]),
                **dict(zip(t2["tasks"], paper["acc"])),
                "avg": paper["avg"],
            }
        )
    return pd.DataFrame(rows)


def generation_columns(measured: dict | None) -> dict:
    """Table 3's generation columns of one model (:func:`merino.generation.measure_generation`'s row)."""
    if not measured:
        return {}
    mb = 2**20
    return {
        "ttft_ms": measured["ttft"]["mean_ms"],
        "decode_ms_per_token": measured["decode_ms_per_token"],
        "decode_tokens_per_s": measured["decode_tokens_per_s"],
        "tokens_per_s": measured["tokens_per_s"],
        "kv_cache_MB": measured.get("kv_cache_bytes", np.nan) / mb,
        "generation_peak_MB": measured.get("peak_bytes", np.nan) / mb,
    }


def paper_jetson_latency(reference: dict) -> dict[str, float]:
    """The paper's Table 3 Jetson Nano latency (ms) per model."""
    t3 = reference["table3_language_modeling"]
    return {m: float(v[t3["columns"].index("jetson_latency_ms")]) for m, v in t3["models"].items()}


def table3(
    costs: dict[str, dict],
    summaries: dict[str, dict],
    reference: dict,
    paper_names: dict[str, str],
    perplexity_tasks: dict[str, str],
    latency: dict,
    predicted: dict | None = None,
    generation: dict | None = None,
) -> pd.DataFrame:
    """Table 3: params, FLOPs, latency and perplexities per model; the paper's FLOPs, Jetson latency and
    perplexities beside, and latency ratios to the same reference model (ours measured, the paper's Jetson).
    With ``generation`` (a generation job's result, beyond the paper): time to first token, decode latency,
    tokens/s, KV-cache and peak memory of cached greedy generation.

    ``costs`` maps every row's model to ``{params, flops, seq_len}`` (and ``flops_with_lm_head`` for the
    paper's baselines); ``summaries`` holds the evaluated ones; ``perplexity_tasks`` maps an lm-eval task
    to its column name (e.g. ``wikitext`` -> ``wikitext2``); ``latency`` is a latency job's result;
    ``predicted``, a datasheet device's predicted latency (merino.roofline), adds its columns (see
    :func:`predicted_latency_columns`)."""
    t3 = reference["table3_language_modeling"]
    jetson = paper_jetson_latency(reference)
    ref = latency["reference"]
    rows = []
    for model, cost in costs.items():
        timed = latency["models"].get(model)
        row = {
            "model": model,
            "params_M": round(cost["params"] / 1e6, 2),
            "flops_G": cost["flops"] / 1e9,
            "flops_with_lm_head_G": cost.get("flops_with_lm_head", np.nan) / 1e9,
            "flops_seq_len": cost["seq_len"],
            "latency_ms": timed["mean_ms"] if timed else np.nan,
            "latency_median_ms": timed["median_ms"] if timed else np.nan,
            "latency_std_ms": timed["std_ms"] if timed else np.nan,
            f"latency_ratio_to_{ref}": latency["ratios"][model]["paired_median"] if timed else np.nan,
            **generation_columns((generation or {}).get("models", {}).get(model)),
        }
        for task, column in perplexity_tasks.items():
            metrics = summaries.get(model, {}).get(task)
            if metrics:
                row[f"{column}_word_ppl"] = metrics["word_perplexity"]
                row[f"{column}_byte_ppl"] = metrics["byte_perplexity"]
        paper_name = paper_names.get(model, model)
        if paper_name in t3["models"]:
            row["paper_model"] = paper_name
            row.update({f"{c}_paper": v for c, v in zip(t3["columns"], t3["models"][paper_name])})
            if ref in jetson:
                row[f"latency_ratio_to_{ref}_paper"] = jetson[paper_name] / jetson[ref]
        if predicted is not None:
            row.update(predicted_latency_columns(predicted, model, paper_name))
        rows.append(row)
    df = pd.DataFrame(rows)
    df.attrs["latency_protocol"] = latency["protocol"]
    if generation:
        df.attrs["generation_protocol"] = generation["protocol"]
    return df


def predicted_latency_columns(predicted: dict, model: str, paper_name: str) -> dict:
    """A Table 3 row's PREDICTED latency on a datasheet device (merino.roofline; ``predicted``: a
    latency_predicted job's result): with the config's efficiency factors, and where the paper measured the
    model, with the datasheet's ideal factors and with factors fitted to the other models' paper latencies
    (leave-one-out).  Columns are named ``predicted_latency_ms_<device>``, ``..._ideal_ms_<device>``,
    ``..._loo_ms_<device>``."""
    device = predicted["device_label"]
    columns = {}
    if model in predicted["models"]:
        columns[f"predicted_latency_ms_{device}"] = predicted["models"][model]["predicted_ms"]
    rows = {r["model"]: r for r in predicted.get("paper_comparison", {}).get("rows", [])}
    if paper_name in rows:
        columns[f"predicted_latency_ideal_ms_{device}"] = rows[paper_name]["predicted_ms"]
        columns[f"predicted_latency_loo_ms_{device}"] = rows[paper_name]["predicted_loo_ms"]
    return columns


def latency_prediction_table(predicted: dict) -> pd.DataFrame:
    """How well a datasheet device's predicted latency matches the paper's Table 3 Jetson Nano latency:
    Spearman's rho, mean absolute and mean signed % error over the paper's models, with the datasheet's
    ideal factors, with factors fitted to all of them (in-sample), and leave-one-out; the factors beside."""
    comparison = predicted["paper_comparison"]
    factors = {
        "datasheet": comparison["datasheet_efficiency"],
        "fitted": comparison["fitted_efficiency"],
        "leave_one_out": {"compute": np.nan, "bandwidth": np.nan, "overhead_us": np.nan},
    }
    return pd.DataFrame(
        [
            {
                "device": predicted["device_label"],
                "factors": key,
                "predicted": True,
                **comparison[key],
                **{f"efficiency_{k}": v for k, v in factors[key].items()},
            }
            for key in ("datasheet", "fitted", "leave_one_out")
        ]
    )


def plot_accuracy_latency(
    table2: pd.DataFrame, table3: pd.DataFrame, reference: dict, path: str | Path, device: str
) -> None:
    """Figure 1: average zero-shot accuracy against latency, bubble area proportional to FLOPs; ours
    (measured on ``device``, our tasks) on the left, the paper's (Jetson Nano, its twelve tasks) on the right."""
    ours = table2[table2.source == "ours"].merge(table3, on="model", suffixes=("", "_t3"))
    t3 = reference["table3_language_modeling"]
    paper = pd.DataFrame(
        [
            {"model": m, "avg": v["avg"], "latency_ms": t3["models"][m][1], "flops_G": t3["models"][m][0]}
            for m, v in reference["table2_zero_shot"]["models"].items()
        ]
    )
    panels = ((ours, f"ours: {device}, batch 1"), (paper, "paper: Jetson Nano"))
    with plotting.figure(path, 1, 2, figsize=(11, 4.8)) as (fig, axes):
        for ax, (df, title) in zip(axes, panels):
            size = 1200 * df["flops_G"] / df["flops_G"].max()
            colour = [plotting.FAMILY_COLOURS[plotting.family(m)] for m in df["model"]]
            ax.scatter(df["latency_ms"], df["avg"], s=size, alpha=0.55, c=colour, edgecolors="white", linewidths=0.5)
            ax.margins(0.15, 0.2)
            ax.set_xlabel("latency (ms)")
            ax.set_ylabel("average accuracy")
            ax.set_title(f"{title} (bubble area ~ FLOPs)")
        families = [plotting.family(m) for df, _ in panels for m in df["model"]]
        plotting.legend_outside(axes[1], handles=plotting.family_handles(families), title="model family")
        plotting.layout(fig)
        for ax, (df, _) in zip(axes, panels):
            plotting.place_labels(ax, df["latency_ms"], df["avg"], list(df["model"]))


def row_cost(entry: dict) -> dict:
    """Params and FLOPs of a table row: ``{"architecture": path, "model": ..., "cost": ...}`` (priced by
    :class:`CostModel`) or ``{"baseline": name, "seq_len": T}`` (a paper baseline's config)."""
    from .baselines import baseline_cost

    if "baseline" in entry:
        return baseline_cost(entry["baseline"], entry["seq_len"])
    arch = Architecture.load(entry["architecture"])
    s = CostModel.from_config(entry["model"], entry["cost"]).summary(arch)
    return {
        "params": s["params_shared"] if entry["model"]["weight_sharing"] else s["params_unshared"],
        "flops": s["flops"],
        "seq_len": entry["cost"]["flops_seq_len"],
    }


def summary_paths(models: list[str], eval_dirs: list[str]) -> dict[str, Path]:
    """Model -> its evaluation's summary.json (``eval_dirs`` in the order of ``models``)."""
    return {m: Path(d) / "summary.json" for m, d in zip(models, eval_dirs, strict=True)}


def read_summaries(paths: dict[str, Path]) -> dict[str, dict]:
    """Model -> its evaluation summary ``{task: {metric: value}}``."""
    import json

    return {m: json.loads(Path(f).read_text())["tasks"] for m, f in paths.items()}


def _accuracies(summary: dict, metric: str) -> dict:
    return {task: m[metric] for task, m in summary.items() if metric in m}


def average_accuracy(summary: dict, metric: str) -> float:
    """Mean ``metric`` over the tasks of an evaluation summary that report it (Table 2's average)."""
    acc = _accuracies(summary, metric)
    if not acc:
        raise ValueError(f"no task of the evaluation reports metric {metric!r} (tasks: {sorted(summary)})")
    return float(np.mean(list(acc.values())))


def quantization_table(
    full: dict[str, dict],
    quantized: dict[tuple[str, str], dict],
    sizes: dict,
    full_bytes: dict[str, int],
    metric: str,
    reference: dict,
    measured: dict[str, dict] | None = None,
    eval_kernels: dict[tuple[str, str], str] | None = None,
) -> pd.DataFrame:
    """Figure 6's numbers: per model, full precision and every quantization scheme: average accuracy (and
    its change from full precision), held-out perplexity, size on disk; the paper's claim beside.

    ``full`` maps a model to its evaluation summary; ``quantized`` maps (model, scheme) to its summary
    and ``sizes`` (model, scheme) to the quantized checkpoint's byte counts; ``full_bytes`` is each
    model's size at 32 bits (its tensors before quantization).  ``measured`` (model -> the ``models`` of
    :func:`~merino.int_kernels.measure_quantized`: fp32 and every scheme) adds the measured columns:
    ``latency_ms`` (mean, the paper's protocol), ``latency_vs_fp32`` (median of paired per-round ratios),
    ``weights_MB`` (resident weight bytes) and ``kernels`` (what ran them); ``eval_kernels``
    ((model, scheme) -> description) what ran the accuracy columns."""
    claim = reference["figure6_quantization"]["claim"]
    rows = []
    for model, summary in full.items():
        ours = [(s, q, sizes[m, s]) for (m, s), q in quantized.items() if m == model]
        fp32 = {"bytes_on_disk": full_bytes[model], "bits_per_quantized_weight": 32.0}
        for scheme, result, size in [("fp32", summary, fp32), *ours]:
            acc = _accuracies(result, metric)
            avg = average_accuracy(result, metric)
            ppl = {f"{task}_byte_ppl": m["byte_perplexity"] for task, m in result.items() if "byte_perplexity" in m}
            row = {
                "model": model,
                "scheme": scheme,
                **acc,
                "avg": avg,
                "avg_change_pct_points": 100 * (avg - average_accuracy(summary, metric)),
                **ppl,
                "size_MB": size["bytes_on_disk"] / 2**20,
                "bits_per_weight": size["bits_per_quantized_weight"],
            }
            if eval_kernels is not None:
                row["eval_kernels"] = eval_kernels.get((model, scheme), "full-precision evaluation")
            if measured is not None:
                m = measured[model][scheme]
                row.update(
                    latency_ms=m["mean_ms"],
                    latency_vs_fp32=m["ratio_to_fp32"]["paired_median"],
                    weights_MB=m["resident_weight_bytes"] / 2**20,
                    kernels=m["kernels"],
                )
            rows.append(row | {"paper_claim": claim})
    return pd.DataFrame(rows)


def plot_quantization(df: pd.DataFrame, path: str | Path, claim: str) -> None:
    """Figure 6: average accuracy of every model at full precision, INT8 and INT4."""
    models, schemes = list(dict.fromkeys(df["model"])), list(dict.fromkeys(df["scheme"]))
    width = 0.8 / len(schemes)
    colours = plotting.shades(plotting.FAMILY_COLOURS["MeRino"], len(schemes))
    with plotting.figure(path, figsize=(max(5.5, 1.8 * len(models) + 1.5), 4)) as (fig, ax):
        for k, scheme in enumerate(schemes):
            sub = df[df.scheme == scheme].set_index("model").reindex(models)
            ax.bar(
                np.arange(len(models)) + (k - (len(schemes) - 1) / 2) * width,
                sub["avg"],
                width,
                label=scheme,
                color=colours[k],
            )
        ax.set_xticks(np.arange(len(models)), models)
        ax.grid(axis="x", visible=False)
        ax.set_ylabel("average accuracy")
        lo = df["avg"].min()
        ax.set_ylim(max(0.0, lo - 0.05), df["avg"].max() + 0.03)
        plotting.legend_outside(ax, title="weights")
        ax.set_title(plotting.wrap(f"GPTQ weight-only quantization\npaper: {claim}", ax))
        plotting.layout(fig)
