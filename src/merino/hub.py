"""Every Hugging Face Hub resource a configuration reads, and whether the local cache holds it.

A configuration reads four kinds of Hub resources: **datasets** (``data.corpus`` and
``correlation.data.corpus`` with ``source: hub``), **tokenizers** (``data.tokenizer`` and
``correlation.data.tokenizer`` with ``source: hub``), the paper baselines' **models** (weights,
config and tokenizer, for ``evaluation.models`` and ``quantization.models``) and the data sets of
lm-eval's built-in **tasks** (``evaluation.tasks`` not generated here nor staged in
``evaluation.task_data``; our Penn Treebank task too).  :func:`required_resources` lists them.

Where compute nodes cannot reach the Hub, the cache is filled beforehand and the workflow runs
with ``HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1``.  Offline, the libraries read two caches:

* models and tokenizers: the Hub cache (``$HF_HUB_CACHE``, default ``$HF_HOME/hub``) as
  ``hf download <repo>`` writes it (``models--<org>--<name>/snapshots/<commit>/<file>``);
* datasets: ``datasets`` 5 reads a Hub dataset offline *only* from its prepared cache
  (``$HF_DATASETS_CACHE``, default ``$HF_HOME/datasets``: ``<org>___<name>/<config>/<version>/<hash>/``,
  what a ``datasets.load_dataset(...)`` with network access writes), also when streaming; a dataset
  repository downloaded with ``hf download --repo-type dataset`` is not used by ``load_dataset(<id>)``.

:func:`check_offline_cache` checks every resource of a configuration against those caches when
offline mode is set, before any job runs, and raises :class:`HubCacheError` naming each missing one
with the command that stages it.  ``python -m merino.hub config/paper.yaml [more.yaml ...]`` prints the
resources of a configuration, their state in the cache and those commands.
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

KINDS = ("dataset", "tokenizer", "model", "task")
TRUE = {"1", "ON", "YES", "TRUE"}


class HubCacheError(RuntimeError):
    """Offline mode and a Hub resource the configuration needs is not in the local cache."""


@dataclass(frozen=True)
class Resource:
    """One Hub resource: ``kind`` (dataset, tokenizer, model, task), the repository id, the dataset config and
    revision where they apply, and the config keys that need it."""

    kind: str
    repo_id: str
    config: str | None = None
    revision: str | None = None
    needed_by: tuple[str, ...] = ()
    made: tuple[str, ...] = ()  # outputs (relative to the working directory) once made, nothing reads it any more

    @property
    def label(self) -> str:
        extra = [f"config {self.config!r}"] * bool(self.config) + [f"revision {self.revision!r}"] * bool(self.revision)
        return f"{self.kind} {self.repo_id}" + (f" ({', '.join(extra)})" if extra else "")

    def staging_command(self) -> str:
        """The command that puts this resource into ``$HF_HOME`` on a machine with Hub access."""
        if self.kind in ("model", "tokenizer"):
            return f"hf download {self.repo_id}"
        args = (
            [repr(self.repo_id)]
            + [repr(self.config)] * bool(self.config)
            + [f"revision={self.revision!r}"] * bool(self.revision)
        )
        return f'python -c "import datasets; datasets.load_dataset({", ".join(args)})"'


def offline() -> bool:
    """Whether the Hub libraries run in offline mode (``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE``)."""
    return any(os.environ.get(v, "").upper() in TRUE for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def hf_home() -> Path:
    return Path(
        os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface"
    ).expanduser()


def hub_cache() -> Path:
    return Path(os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or hf_home() / "hub")


def datasets_cache() -> Path:
    return Path(os.environ.get("HF_DATASETS_CACHE") or hf_home() / "datasets")


# ---- what a configuration needs ------------------------------------------------------------------------------------


def task_dataset(task: str) -> tuple[str, str | None, str | None]:
    """(path, name, revision) of the data set a built-in task reads (paper Tables 2 and 3)."""
    from .tasks import PAPER_TASK_DATA

    if task not in PAPER_TASK_DATA:
        raise ValueError(
            f"evaluation.tasks: no known data set for task {task!r}; known: {sorted(PAPER_TASK_DATA)} "
            "(or stage it in evaluation.task_data)"
        )
    return PAPER_TASK_DATA[task]


def required_resources(config: dict) -> list[Resource]:
    """Every Hub resource ``config`` reads, each once, with the config keys that need it."""
    from .baselines import PAPER_BASELINES
    from .tasks import LOCAL_TASKS

    found: dict[tuple, list[str]] = {}
    made: dict[tuple, list[str]] = {}

    def need(kind, repo_id, cfg=None, revision=None, *, key, outputs=None):
        found.setdefault((kind, repo_id, cfg, revision), []).append(key)
        made.setdefault((kind, repo_id, cfg, revision), [])
        made[(kind, repo_id, cfg, revision)] = (
            None
            if outputs is None or made[(kind, repo_id, cfg, revision)] is None
            else made[(kind, repo_id, cfg, revision)] + outputs
        )

    # the corpora and tokenizers are read only by the data jobs (rules prepare_data, prepare_correlation_data):
    # once their token caches and tokenizers exist (e.g. made on a transfer node), nothing needs them
    data = {"data": (config.get("data", {}), "results/data")}
    if "data" in config.get("correlation", {}):
        data["correlation.data"] = (config["correlation"]["data"], "results/correlation/data")
    for prefix, (section, out) in data.items():
        corpus, tokenizer = section.get("corpus", {}), section.get("tokenizer", {})
        outputs = [f"{out}/tokens/meta.json", f"{out}/tokenizer/tokenizer_config.json"]
        if corpus.get("source") == "hub":
            need(
                "dataset",
                corpus["name"],
                corpus.get("config"),
                corpus.get("revision"),
                key=f"{prefix}.corpus",
                outputs=outputs,
            )
        if tokenizer.get("source") == "hub":
            need("tokenizer", tokenizer["name"], key=f"{prefix}.tokenizer", outputs=outputs)
    for key in ("evaluation", "quantization"):
        for name in config.get(key, {}).get("models", []):
            if name in PAPER_BASELINES and name not in config.get("pretrain", {}).get("models", {}):
                need("model", PAPER_BASELINES[name].hub_id, key=f"{key}.models ({name})")
    evaluation = config.get("evaluation", {})
    for task in evaluation.get("tasks", []):
        if task not in LOCAL_TASKS and task not in evaluation.get("task_data", {}):
            need("task", *task_dataset(task), key=f"evaluation.tasks ({task})")
    return [Resource(*k, needed_by=tuple(v), made=tuple(made[k] or ())) for k, v in found.items()]


# ---- what the cache holds ------------------------------------------------------------------------------------------


def _snakecase(name: str) -> str:
    """``datasets``' directory name of a dataset (its camelcase_to_snakecase of the part after the slash)."""
    from datasets.naming import camelcase_to_snakecase

    return camelcase_to_snakecase(name)


def prepared_dataset(path: str, config: str | None, cache: Path | None = None) -> Path | None:
    """The directory of ``datasets``' prepared cache that ``load_dataset(path, config)`` reads offline
    (the rule of datasets.packaged_modules.cache: a ``<config>/<version>/<hash>`` directory whose
    ``dataset_info.json`` names that config; any config when none is given), or None.  ``cache``: the
    datasets cache to look in (default: this process's)."""
    *namespace, name = path.split("/")
    root = (cache or datasets_cache()) / "___".join([*namespace, _snakecase(name)])
    for candidate in sorted(glob.glob(str(root / (glob.escape(config) if config else "*") / "*" / "*"))):
        info = Path(candidate) / "dataset_info.json"
        try:
            if config is None or json.loads(info.read_text()).get("config_name") == config:
                return Path(candidate)
        except (OSError, ValueError):
            continue
    return None


def snapshot(repo_id: str, files: tuple[str, ...], revision: str | None = None) -> Path | None:
    """The cached snapshot of model repository ``repo_id`` holding all of ``files`` (any one of a tuple's
    alternatives, written ``a|b``), as ``hf download`` leaves it, or None."""
    repo = hub_cache() / f"models--{repo_id.replace('/', '--')}"
    ref = repo / "refs" / (revision or "main")
    commit = ref.read_text().strip() if ref.is_file() else (revision or "")
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        return None
    snap = repo / "snapshots" / commit
    if all(any((snap / alt).is_file() for alt in f.split("|")) for f in files):
        return snap
    return None


MODEL_FILES = (
    "config.json",
    "model.safetensors|model.safetensors.index.json|pytorch_model.bin",
    "tokenizer_config.json",
)
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json|vocab.json")


def cached(resource: Resource) -> bool:
    if resource.kind in ("dataset", "task"):
        return prepared_dataset(resource.repo_id, resource.config) is not None
    files = MODEL_FILES if resource.kind == "model" else TOKENIZER_FILES
    return snapshot(resource.repo_id, files) is not None


def missing_resources(config: dict) -> list[Resource]:
    """The resources of ``config`` neither in the cache nor made unnecessary by outputs in the working directory."""
    return [
        r
        for r in required_resources(config)
        if not cached(r) and not (r.made and all(Path(p).exists() for p in r.made))
    ]


def staging_help(resources: list[Resource]) -> str:
    lines = [f"  {r.label}, for {', '.join(r.needed_by)}:\n      {r.staging_command()}" for r in resources]
    return (
        "\n".join(lines) + f"\nStage them on a machine with Hub access into the same HF_HOME (copy it to "
        f"{hf_home()} here), with the commands above (profiles/slurm/README.md, step 4); or export a corpus to "
        "files (data.corpus.source: files) and a task's data set to files (evaluation.task_data)."
    )


def check_offline_cache(config: dict) -> None:
    """Offline mode: raise :class:`HubCacheError` naming every Hub resource ``config`` needs that the local
    caches lack, and the commands that stage them.  Online: nothing to check (the Hub answers or the job
    that reads the resource says why not)."""
    if not offline():
        return
    missing = missing_resources(config)
    if missing:
        raise HubCacheError(
            f"offline mode (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) and the Hugging Face cache lacks "
            f"{len(missing)} resource(s) this configuration reads (Hub cache {hub_cache()}, datasets cache "
            f"{datasets_cache()}):\n" + staging_help(missing)
        )


def main(argv: list[str] | None = None) -> int:
    """``python -m merino.hub CONFIG [MORE ...]``: the Hub resources of the layered configuration, whether the
    cache holds each, and the commands that stage them."""
    import yaml

    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print(main.__doc__, file=sys.stderr)
        return 2
    config: dict = {}
    for path in paths:
        _merge(config, yaml.safe_load(Path(path).read_text()) or {})
    resources = required_resources(config)
    for r in resources:
        print(f"{'cached ' if cached(r) else 'MISSING'}  {r.label:70s}  {r.staging_command()}")
    return 1 if any(not cached(r) for r in resources) else 0


def _merge(base: dict, over: dict) -> None:
    """Snakemake's layering of config files: dicts merged key by key, everything else replaced."""
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


if __name__ == "__main__":
    sys.exit(main())
