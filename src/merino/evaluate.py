"""Zero-shot evaluation through lm-evaluation-harness (paper Tables 2 and 3).

:func:`evaluate` runs lm-eval's Hugging Face backend (``HFLM``) in-process on a checkpoint
directory or a Hub model id.  Our MeRino checkpoints load without remote code here because
:func:`merino.model.register` registers the model type; the plain CLI loads the same directory
with ``--model_args pretrained=DIR,trust_remote_code=True`` (our own modelling file is saved
beside the weights) and gets the same numbers.  lm-eval's raw output (results, task configs,
per-sample log-likelihoods) is kept by :func:`save_raw`; :func:`summarize` flattens it to one
number per task and metric for the tables.

Built-in tasks read their data sets from the Hub.  :func:`check_task_data` finds out before
lm-eval starts whether they can be read (the Hub answers, or the datasets cache has them in
offline mode) and otherwise stops with an error that names the tasks and how to stage them;
:func:`write_staged_tasks` points a built-in task at local files (``evaluation.task_data``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .tasks import LOCAL_TASKS, TASKS_DIR

STAGING_HELP = (
    "Stage the data sets where the Hub is unreachable, either (a) fill a datasets cache on a machine with "
    "network access (e.g. `lm_eval --model hf --model_args pretrained=gpt2 --tasks <tasks> --limit 1` or "
    "`python -c \"import datasets; datasets.load_dataset('<path>', '<name>')\"`), copy HF_HOME to the cluster and set "
    "HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 before starting Snakemake, or (b) download the files and name them in "
    "config evaluation.task_data: {<task>: {dataset_path: parquet|json|csv, dataset_kwargs: {data_files: "
    "{<split>: /abs/path}}}}, which overrides the task's data set and keeps its prompts and metrics (set "
    "training_split: null and validation_split: null for splits not staged)"
)
METRICS = ("acc", "acc_norm", "word_perplexity", "byte_perplexity", "bits_per_byte")


class TaskDataError(RuntimeError):
    """A built-in lm-eval task whose data set cannot be read here."""


def _offline() -> bool:
    from .hub import offline

    return offline()


def _hub_reachable(timeout: float = 5.0) -> str | None:
    """None if the Hub answers, else the reason."""
    import urllib.request

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        urllib.request.urlopen(f"{endpoint}/api/datasets?limit=1", timeout=timeout).close()
        return None
    except OSError as err:
        return f"{endpoint} is unreachable ({err})"


def builtin_tasks(tasks: list[str], staged: dict) -> list[str]:
    """The tasks that read a Hub data set: neither generated locally nor staged in ``evaluation.task_data``."""
    return [t for t in tasks if t not in LOCAL_TASKS and t not in staged]


def check_task_data(tasks: list[str], staged: dict) -> None:
    """Raise :class:`TaskDataError` naming every task whose data set cannot be read, and how to stage it."""
    from .hub import Resource, cached, datasets_cache, task_dataset

    needed = builtin_tasks(tasks, staged)
    if not needed:
        return
    if not _offline():
        reason = _hub_reachable()
        if reason is None:
            return
        raise TaskDataError(
            f"evaluation.tasks {needed} read their data sets from the Hugging Face Hub, but {reason}. " + STAGING_HELP
        )
    resources = {task: Resource("task", *task_dataset(task)) for task in needed}
    missing = [task for task, r in resources.items() if not cached(r)]
    if missing:
        listed = ", ".join(f"{t} ({'/'.join(filter(None, task_dataset(t)[:2]))})" for t in missing)
        raise TaskDataError(
            f"offline mode (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) and the datasets cache "
            f"({datasets_cache()}) has no copy of: {listed}. " + STAGING_HELP
        )


def builtin_task_yamls(tasks: list[str]) -> dict[str, Path]:
    """The YAML file of each of lm-eval's built-in ``tasks`` found (one text scan of its task folder, ~0.4 s;
    indexing every task with a TaskManager costs ~10 s)."""
    import re

    import lm_eval

    if not tasks:
        return {}
    pattern = re.compile(r"^task:\s*['\"]?(" + "|".join(map(re.escape, tasks)) + r")['\"]?\s*$", re.M)
    found: dict[str, Path] = {}
    for path in sorted((Path(lm_eval.__file__).parent / "tasks").rglob("*.yaml")):
        for match in pattern.finditer(path.read_text(errors="replace")):
            found.setdefault(match.group(1), path)
    return found


def builtin_task_yaml(task: str) -> Path:
    """The YAML file of lm-eval's built-in task ``task``."""
    found = builtin_task_yamls([task])
    if task not in found:
        raise ValueError(f"evaluation.task_data.{task}: lm-eval has no YAML task named {task!r} to override")
    return found[task]


def write_staged_tasks(staged: dict, out_dir: str | Path) -> Path:
    """One YAML per ``evaluation.task_data`` entry: the built-in task's definition (``include``) with its
    data set replaced by local files.  Tasks in ``out_dir`` take precedence over lm-eval's own."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    allowed = {
        "dataset_path",
        "dataset_name",
        "dataset_kwargs",
        "training_split",
        "validation_split",
        "test_split",
        "fewshot_split",
    }
    for task, override in staged.items():
        if unknown := sorted(set(override) - allowed):
            raise ValueError(f"evaluation.task_data.{task}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        spec = {"include": str(builtin_task_yaml(task).resolve()), "task": task, **override}
        (out / f"{task}.yaml").write_text(json.dumps(spec, indent=1))  # JSON is YAML
    return out


def evaluate(
    pretrained: str,
    tasks: list[str],
    include_paths: list[str | Path],
    *,
    batch_size: int = 16,
    device: str = "cpu",
    limit: int | float | None = None,
    seed: int = 0,
    bootstrap_iters: int = 1000,
    dtype: str = "float32",
    model=None,
) -> dict:
    """lm-eval ``simple_evaluate`` (zero-shot) of ``pretrained`` (a directory or Hub id) on ``tasks``.

    ``include_paths`` hold our task YAMLs (generated, staged, Penn Treebank); lm-eval's own tasks are
    indexed only when a task needs them.  ``model`` passes an already-loaded model (e.g. a quantized
    one) instead of loading ``pretrained``."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from .model import register

    register()
    paths = [str(p) for p in [TASKS_DIR, *include_paths]]
    manager = TaskManager(include_path=paths, include_defaults=False)
    missing = [t for t in tasks if t not in manager.all_tasks]
    if missing:  # lm-eval's own tasks: index the folders that define them (all of lm-eval's: ~10 s)
        folders = sorted({str(p.parent) for p in builtin_task_yamls(missing).values()})
        manager = TaskManager(include_path=[*paths, *folders], include_defaults=False)
        if any(t not in manager.all_tasks for t in tasks):  # a group or tag name: lm-eval's full index
            manager = TaskManager(include_path=paths)
    if model is not None:
        from lm_eval.models.huggingface import HFLM
        from transformers import AutoTokenizer

        lm = HFLM(
            pretrained=model, tokenizer=AutoTokenizer.from_pretrained(pretrained), batch_size=batch_size, device=device
        )
        model_args = None
    else:
        lm, model_args = "hf", {"pretrained": str(pretrained), "dtype": dtype}  # ours load through register()
    return lm_eval.simple_evaluate(
        model=lm,
        model_args=model_args,
        tasks=list(tasks),
        num_fewshot=0,
        batch_size=batch_size,
        device=device,
        limit=limit,
        bootstrap_iters=bootstrap_iters,
        log_samples=True,
        task_manager=manager,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
    )


def summarize(results: dict) -> dict:
    """``{task: {metric: value, metric_stderr: value, samples: n}}`` from lm-eval's results."""
    out = {}
    for task, metrics in results["results"].items():
        row = {}
        for key, value in metrics.items():
            if "," not in key:
                continue
            metric, _filter = key.split(",", 1)
            base = metric.removesuffix("_stderr")
            if base in METRICS and isinstance(value, (int, float)):
                row[metric] = float(value)
        row["samples"] = int(results.get("n-samples", {}).get(task, {}).get("effective", 0))
        out[task] = row
    return out


def save_raw(results: dict, out_dir: str | Path) -> None:
    """lm-eval's output as its CLI writes it: ``results.json`` (metrics, configs, versions) and one
    ``samples_<task>.jsonl`` per task."""
    from lm_eval.utils import handle_non_serializable

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    samples = results.get("samples", {})
    head = {k: v for k, v in results.items() if k != "samples"}
    (out / "results.json").write_text(json.dumps(head, indent=1, default=handle_non_serializable))
    for task, rows in samples.items():
        with open(out / f"samples_{task}.jsonl", "w") as fh:
            for row in rows:
                fh.write(json.dumps(row, default=handle_non_serializable) + "\n")
