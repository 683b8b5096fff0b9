"""merino.hub: the Hub resources a configuration reads, the cache layouts that hold them offline, and the
task -> data set table checked against lm-eval's own task definitions."""

from pathlib import Path

import hub_staging
import pytest
import yaml

from merino import hub
from merino.evaluate import builtin_task_yamls
from merino.tasks import PAPER_TASK_DATA, TASKS_DIR

REPO = Path(__file__).resolve().parents[1]


def paper_config() -> dict:
    return yaml.safe_load((REPO / "config" / "paper.yaml").read_text())


def test_paper_config_lists_corpora_tokenizer_baselines_and_task_data():
    labels = {(r.kind, r.repo_id, r.config) for r in hub.required_resources(paper_config())}
    assert ("dataset", "EleutherAI/the_pile_deduplicated", None) in labels
    assert ("dataset", "billion-word-benchmark/lm1b", "plain_text") in labels
    assert ("tokenizer", "gpt2", None) in labels
    assert {r for k, r, _ in labels if k == "model"} == {
        "EleutherAI/pythia-70m",
        "EleutherAI/pythia-160m",
        "cerebras/Cerebras-GPT-111M",
        "openai-community/gpt2",
        "facebook/opt-125m",
        "facebook/opt-350m",
    }
    assert {(r, c) for k, r, c in labels if k == "task"} == {d[:2] for d in PAPER_TASK_DATA.values()}


def test_embedded_default_needs_nothing_from_the_hub():
    assert hub.required_resources(yaml.safe_load((REPO / "config" / "config.yaml").read_text())) == []


def test_task_data_table_matches_lm_evals_task_definitions():
    """PAPER_TASK_DATA (what the offline check looks for) is what lm-eval's YAMLs (and our ptb.yaml) read."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: None)
    yamls = builtin_task_yamls([t for t in PAPER_TASK_DATA if t != "ptb"]) | {"ptb": TASKS_DIR / "ptb.yaml"}
    for task, (path, name, revision) in PAPER_TASK_DATA.items():
        spec, file = {}, yamls[task]
        while True:
            own = yaml.load(file.read_text(), Loader=Loader)
            spec = {**own, **spec}
            if "include" not in own:
                break
            file = file.parent / own["include"]
        assert (spec["dataset_path"], spec.get("dataset_name"), (spec.get("dataset_kwargs") or {}).get("revision")) == (
            path,
            name,
            revision,
        ), task


def test_offline_check_names_what_is_missing_and_how_to_stage_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no results/data/ here: the corpus and tokenizer are still needed
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_DATASETS_CACHE", raising=False)
    config = {
        "data": {
            "corpus": {"source": "hub", "name": "org/corpus", "config": "en"},
            "tokenizer": {"source": "hub", "name": "gpt2"},
        },
        "evaluation": {"models": ["OPT-125M"], "tasks": ["arc_easy"], "task_data": {}},
    }
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    hub.check_offline_cache(config)  # online: nothing to check
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(hub.HubCacheError) as err:
        hub.check_offline_cache(config)
    message = str(err.value)
    for line in [
        "dataset org/corpus (config 'en'), for data.corpus",
        "python -c \"import datasets; datasets.load_dataset('org/corpus', 'en')\"",
        "tokenizer gpt2, for data.tokenizer",
        "hf download gpt2",
        "model facebook/opt-125m, for evaluation.models (OPT-125M)",
        "hf download facebook/opt-125m",
        "task allenai/ai2_arc (config 'ARC-Easy'), for evaluation.tasks (arc_easy)",
    ]:
        assert line in message
    # a dataset repository downloaded as files (hf download --repo-type dataset) is not what datasets reads offline
    (tmp_path / "hub" / "datasets--org--corpus" / "snapshots").mkdir(parents=True)
    assert not hub.cached(hub.Resource("dataset", "org/corpus", "en"))
    hub_staging.stage_dataset(tmp_path, "org/corpus", "en", {"train": [{"text": "a b c"}]})
    hub_staging.stage_dataset(
        tmp_path, "allenai/ai2_arc", "ARC-Easy", {"test": hub_staging.task_rows("arc_easy", 2, "test")}
    )
    hub_staging.stage_tokenizer(tmp_path, "gpt2", hub_staging.byte_level_bpe(300))
    with pytest.raises(hub.HubCacheError) as err:
        hub.check_offline_cache(config)
    assert "1 resource(s)" in str(err.value) and "facebook/opt-125m" in str(err.value)


@pytest.mark.slow
def test_staged_datasets_load_offline_through_datasets(tmp_path):
    """The prepared-cache layout is what datasets 5 reads offline, streamed or not (in a fresh process: the
    offline switch is read when datasets is imported)."""
    import subprocess
    import sys

    hub_staging.stage_dataset(
        tmp_path,
        "org/corpus",
        "en",
        {"train": [{"text": "one", "meta": {"k": "v"}}] * 3, "test": [{"text": "two", "meta": {"k": "w"}}]},
    )
    code = (
        "import datasets; s = datasets.load_dataset('org/corpus', 'en', split='train', streaming=True); "
        "d = datasets.load_dataset('org/corpus', 'en', split='test', revision='refs/convert/parquet'); "
        "print([r['text'] for r in s], d[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**hub_staging.env(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "['one', 'one', 'one'] {'text': 'two', 'meta': {'k': 'w'}}" in out.stdout


def test_corpus_and_tokenizer_are_not_needed_once_the_data_jobs_ran(tmp_path, monkeypatch):
    """The Slurm guide's transfer-node route (step 4): the data jobs ran where the Hub answers; offline, nothing
    reads the corpus."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    config = {
        "data": {"corpus": {"source": "hub", "name": "org/corpus"}, "tokenizer": {"source": "hub", "name": "gpt2"}}
    }
    assert [r.repo_id for r in hub.missing_resources(config)] == ["org/corpus", "gpt2"]
    for path in ("results/data/tokens/meta.json", "results/data/tokenizer/tokenizer_config.json"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("{}")
    hub.check_offline_cache(config)
