"""A local Hugging Face cache holding small synthetic stand-ins for every Hub resource of config/paper.yaml.

Route: the cache, not a Hub endpoint on 127.0.0.1.  Compute nodes without the Hub run the paper config
with ``HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1`` over a staged ``HF_HOME`` (profiles/slurm/README.md, step 4),
so that is what the rehearsal exercises: the very loading calls of the workflow (``datasets.load_dataset``
of the corpora, streaming included, lm-eval's own task loading, ``from_pretrained`` of tokenizers and
baselines) in offline mode, reading the cache layouts the staging commands write
(:meth:`merino.hub.Resource.staging_command`):

* ``hf download <repo>`` -> ``hub/models--<org>--<name>/refs/main`` + ``snapshots/<commit>/<files>``
  (``hf download`` stores blobs and links the snapshot files to them; offline lookups read the snapshot
  path only, so plain files stand in for the links);
* ``datasets.load_dataset(<id>, <config>)`` with network access -> the prepared cache
  ``datasets/<org>___<name>/<config>/0.0.0/<commit>/{dataset_info.json, <name>-<split>.arrow}``, the only
  place datasets 5 reads a Hub dataset from offline (streamed or not).  Written here with datasets' own
  ArrowWriter and DatasetInfo, as its builders write them.

A local endpoint would exercise the online code instead (which the cluster route never runs) and would need a
re-implementation of the Hub's API; it buys nothing the offline route misses except the download itself.

Contents (real schemas, synthetic values): the deduplicated Pile (``text``, ``meta``), LM1B's parquet export
(``text``; train and test), a byte-level BPE saved as ``gpt2`` (``<|endoftext|>``), the paper baselines as
randomly initialised models with their real configurations (merino.baselines) and a byte-level BPE with their
family's special tokens, and the data set of every paper task (lm-eval 0.4.13's fields and splits), WikiText-2
and Penn Treebank included.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

WORDS = (
    "the a of to and in is was for on that with as by at from his her it an were are which this be or has had not "
    "but one their first new two after who they its also been have more other into time when there than over only "
    "year most some city school during world would three under between many people later state water river small "
    "house game team music light north south early century found known made used called because while where about "
    "these both each through before well large part since high family work"
).split()


def _rng(*key) -> random.Random:
    return random.Random(hashlib.sha256(repr(key).encode()).hexdigest())


def sentence(rng: random.Random, n: int | None = None) -> str:
    words = [rng.choice(WORDS) for _ in range(n or rng.randint(6, 14))]
    return " ".join(words).capitalize() + "."


def paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(sentence(rng) for _ in range(sentences))


def commit(*key) -> str:
    """A 40-hex commit id, fixed per repository."""
    return hashlib.sha1(repr(key).encode()).hexdigest()


# ---- datasets: datasets' prepared cache ----------------------------------------------------------------------------


def stage_dataset(hf_home: Path, path: str, config: str | None, splits: dict[str, list[dict]]) -> Path:
    """``splits`` as the prepared cache ``datasets.load_dataset(path, config)`` leaves in ``hf_home/datasets``."""
    import datasets
    from datasets.arrow_writer import ArrowWriter
    from datasets.naming import camelcase_to_snakecase

    *namespace, name = path.split("/")
    config_name = config or "default"
    out = (
        hf_home
        / "datasets"
        / "___".join([*namespace, camelcase_to_snakecase(name)])
        / config_name
        / "0.0.0"
        / commit("dataset", path)
    )
    out.mkdir(parents=True, exist_ok=True)
    split_dict, features = datasets.SplitDict(dataset_name=name), None
    for split, rows in splits.items():
        table = datasets.Dataset.from_list(rows)
        features = table.features
        with ArrowWriter(features=features, path=str(out / f"{name}-{split}.arrow")) as writer:
            writer.write_table(table.data.table)
            n, size = writer.finalize()
        split_dict.add(datasets.SplitInfo(name=split, num_bytes=size, num_examples=n, dataset_name=name))
    info = datasets.DatasetInfo(
        features=features,
        config_name=config_name,
        dataset_name=name,
        splits=split_dict,
        builder_name="parquet",
        version="0.0.0",
    )
    info.write_to_directory(str(out))
    return out


def pile_rows(n: int) -> list[dict]:
    rng = _rng("pile")
    sets = ("Pile-CC", "Wikipedia (en)", "PubMed Abstracts", "Github", "ArXiv", "FreeLaw")
    return [{"text": paragraph(rng, rng.randint(3, 8)), "meta": {"pile_set_name": rng.choice(sets)}} for _ in range(n)]


def lm1b_rows(n: int, split: str) -> list[dict]:
    rng = _rng("lm1b", split)
    return [{"text": sentence(rng, rng.randint(8, 24))} for _ in range(n)]


def _choices(rng, k, labels="ABCD"):
    return {"text": [sentence(rng, 3)[:-1] for _ in range(k)], "label": list(labels[:k])}


def task_rows(task: str, n: int, split: str) -> list[dict]:
    """Rows with the fields lm-eval 0.4.13's task definition of ``task`` reads (doc_to_text / target / choice,
    process_docs), synthetic values."""
    rng = _rng(task, split)
    rows = []
    for i in range(n):
        s1, s2 = sentence(rng), sentence(rng)
        if task == "hellaswag":
            rows.append(
                {
                    "ind": i,
                    "activity_label": "Cooking",
                    "ctx_a": s1,
                    "ctx_b": s2.lower(),
                    "ctx": s1 + " " + s2,
                    "endings": [sentence(rng) for _ in range(4)],
                    "source_id": f"s{i}",
                    "split": split,
                    "split_type": "indomain",
                    "label": str(rng.randrange(4)),
                }
            )
        elif task == "winogrande":
            rows.append(
                {
                    "sentence": f"{s1[:-1]} because _ {s2.lower()}",
                    "option1": "the river",
                    "option2": "the house",
                    "answer": rng.choice("12"),
                }
            )
        elif task in ("arc_easy", "arc_challenge"):
            c = _choices(rng, 4)
            rows.append({"id": f"q{i}", "question": s1[:-1] + "?", "choices": c, "answerKey": rng.choice(c["label"])})
        elif task == "openbookqa":
            c = _choices(rng, 4)
            rows.append({"id": f"q{i}", "question_stem": s1[:-1], "choices": c, "answerKey": rng.choice(c["label"])})
        elif task == "boolq":
            rows.append(
                {"question": s1[:-1].lower(), "passage": paragraph(rng, 3), "idx": i, "label": rng.randrange(2)}
            )
        elif task == "wic":
            w = s1.split()[1]
            start = s1.index(" " + w) + 1
            rows.append(
                {
                    "word": w,
                    "sentence1": s1,
                    "sentence2": s2,
                    "start1": start,
                    "end1": start + len(w),
                    "start2": 0,
                    "end2": len(s2.split()[0]),
                    "idx": i,
                    "label": rng.randrange(2),
                }
            )
        elif task == "cb":
            rows.append({"premise": s1, "hypothesis": s2[:-1], "idx": i, "label": rng.randrange(3)})
        elif task == "wsc":
            words = s1[:-1].split()
            rows.append(
                {
                    "text": s1,
                    "span1_index": 0,
                    "span2_index": 3,
                    "span1_text": words[0],
                    "span2_text": words[3],
                    "idx": i,
                    "label": rng.randrange(2),
                }
            )
        elif task == "rte":
            rows.append({"sentence1": s1, "sentence2": s2[:-1], "label": rng.randrange(2), "idx": i})
        elif task == "pubmedqa":
            rows.append(
                {
                    "QUESTION": s1[:-1] + "?",
                    "CONTEXTS": [paragraph(rng, 2), paragraph(rng, 2)],
                    "LABELS": ["BACKGROUND", "RESULTS"],
                    "MESHES": ["Humans"],
                    "YEAR": "2001",
                    "reasoning_required_pred": "yes",
                    "reasoning_free_pred": "yes",
                    "final_decision": rng.choice(["yes", "no", "maybe"]),
                    "LONG_ANSWER": s2,
                }
            )
        elif task == "logiqa":
            rows.append(
                {
                    "label": rng.choice("abcd"),
                    "context": paragraph(rng, 2),
                    "question": s1[:-1] + "?",
                    "options": [sentence(rng, 4) for _ in range(4)],
                }
            )
        elif task == "wikitext":
            rows.append({"page": f" = {s1[:-1]} = \n\n " + " \n ".join(paragraph(rng, 2) for _ in range(2)) + " \n"})
        elif task == "ptb":
            rows.append({"sentence": s1[:-1].lower()})
        else:
            raise ValueError(f"no synthetic rows for task {task!r}")
    return rows


def task_splits(task: str) -> list[str]:
    """The splits lm-eval's definition of ``task`` names (train/validation/test where given)."""
    import yaml

    from merino.evaluate import builtin_task_yaml
    from merino.tasks import TASKS_DIR

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: None)
    path = TASKS_DIR / "ptb.yaml" if task == "ptb" else builtin_task_yaml(task)
    spec = {}
    while True:  # include chain: the including file wins
        own = yaml.load(path.read_text(), Loader=Loader)
        spec = {**own, **spec}
        if "include" not in own:
            break
        path = path.parent / own["include"]
    return [spec[k] for k in ("training_split", "validation_split", "test_split") if spec.get(k)]


# ---- models and tokenizers: the Hub cache as `hf download` leaves it ---------------------------------------------


def snapshot_dir(hf_home: Path, repo_id: str) -> Path:
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    sha = commit("model", repo_id)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(sha)
    out = repo / "snapshots" / sha
    out.mkdir(parents=True, exist_ok=True)
    return out


def byte_level_bpe(vocab_size: int = 512):
    """A byte-level BPE (GPT-2's pre-tokenizer and decoder) trained on the synthetic text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    rng = _rng("bpe")
    tok.train_from_iterator([paragraph(rng, 5) for _ in range(300)], trainer)
    return tok


FAMILY_SPECIALS = {  # the special tokens of each family's real tokenizer
    "gpt2": {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"},
    "gpt_neox": {
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|padding|>",
    },
    "opt": {"bos_token": "</s>", "eos_token": "</s>", "unk_token": "</s>", "pad_token": "<pad>"},
}


def tokenizer_for(family: str, bpe):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(bpe.to_str()),
        clean_up_tokenization_spaces=False,
        model_max_length=2048,
        **FAMILY_SPECIALS[family],
    )
    return tok


def stage_tokenizer(hf_home: Path, repo_id: str, bpe, family: str = "gpt2") -> Path:
    """A tokenizer repository (``gpt2``): its tokenizer files and the model config AutoTokenizer reads."""
    from transformers import GPT2Config

    out = snapshot_dir(hf_home, repo_id)
    tokenizer_for(family, bpe).save_pretrained(out)
    GPT2Config().to_json_file(out / "config.json")
    return out


def stage_baseline(hf_home: Path, name: str, bpe) -> Path:
    """A paper baseline under its Hub id: its real configuration, random weights (fp16, as most of the real
    checkpoints), its family's tokenizer."""
    import torch

    from merino.baselines import PAPER_BASELINES, baseline_model

    b = PAPER_BASELINES[name]
    out = snapshot_dir(hf_home, b.hub_id)
    torch.manual_seed(0)
    model = baseline_model(name, device="cpu").to(torch.float16)
    model.config.use_cache = True
    model.save_pretrained(out)
    tokenizer_for(b.model_type, bpe).save_pretrained(out)
    return out


# ---- everything a config needs -------------------------------------------------------------------------------------


def stage(hf_home: Path, resources, rows: dict | None = None) -> list[str]:
    """Stages every :class:`merino.hub.Resource` of ``resources``; returns their labels.  ``rows``: rows per
    corpus (pile documents, lm1b train/test sentences) and per task split."""
    from merino.baselines import PAPER_BASELINES
    from merino.tasks import PAPER_TASK_DATA

    rows = {"pile": 400, "lm1b": 600, "task": 4, **(rows or {})}
    hf_home = Path(hf_home)
    bpe = byte_level_bpe()
    by_hub_id = {b.hub_id: n for n, b in PAPER_BASELINES.items()}
    tasks_of = {}
    for task, data in PAPER_TASK_DATA.items():
        tasks_of.setdefault(data[:2], []).append(task)
    for r in resources:
        if r.kind == "dataset" and r.repo_id == "EleutherAI/the_pile_deduplicated":
            stage_dataset(hf_home, r.repo_id, r.config, {"train": pile_rows(rows["pile"])})
        elif r.kind == "dataset" and r.repo_id == "billion-word-benchmark/lm1b":
            stage_dataset(
                hf_home,
                r.repo_id,
                r.config,
                {"train": lm1b_rows(rows["lm1b"], "train"), "test": lm1b_rows(rows["lm1b"] // 10, "test")},
            )
        elif r.kind == "task":
            task = tasks_of[(r.repo_id, r.config)][0]
            stage_dataset(
                hf_home, r.repo_id, r.config, {s: task_rows(task, rows["task"], s) for s in task_splits(task)}
            )
        elif r.kind == "tokenizer":
            stage_tokenizer(hf_home, r.repo_id, bpe)
        elif r.kind == "model":
            stage_baseline(hf_home, by_hub_id[r.repo_id], bpe)
        else:
            raise ValueError(f"no synthetic stand-in for {r.label}")
    return [r.label for r in resources]


def remove(hf_home: Path, resource) -> Path:
    """Deletes one staged resource from the cache; returns what was removed."""
    from merino import hub

    if resource.kind in ("dataset", "task"):
        path = hub.prepared_dataset(resource.repo_id, resource.config, Path(hf_home) / "datasets")
    else:
        path = Path(hf_home) / "hub" / f"models--{resource.repo_id.replace('/', '--')}"
    shutil.rmtree(path)
    return path


def env(hf_home: Path) -> dict:
    """Environment of an offline run over the staged cache."""
    return {
        "HF_HOME": str(hf_home),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


if __name__ == "__main__":  # python tests/hub_staging.py HF_HOME CONFIG [MORE ...]: stage what the configs need
    import sys

    import yaml

    from merino.hub import _merge, required_resources

    config: dict = {}
    for p in sys.argv[2:]:
        _merge(config, yaml.safe_load(Path(p).read_text()))
    print(json.dumps(stage(Path(sys.argv[1]), required_resources(config)), indent=1))
