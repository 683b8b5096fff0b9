"""lm-evaluation-harness tasks: generated local tasks for offline runs, and the paper's task list.

The paper evaluates zero-shot on twelve lm-eval tasks (Table 2) and reports WikiText-2 and Penn
Treebank perplexity (Table 3).  Where those data sets cannot be read (no Hub), the workflow makes
stand-ins from the held-out (``test``) split of its own corpus and runs them through real
lm-eval, as task YAMLs over local JSONL files (``dataset_path: json``):

* ``merino_word_order`` (multiple choice, ``acc`` / ``acc_norm``): passages drawn as below, the true
  continuation against the same words in other orders: syntax, which small models learn first.
* ``merino_continuation`` (multiple choice, ``acc`` / ``acc_norm``): a passage of
  ``context_words`` words and ``choices`` candidate continuations of ``continuation_words``
  words: the true one, and spans drawn from *other* held-out documents.  Every candidate is a
  span of real text starting at a random word, so only a model that follows the passage (topic,
  syntax across the junction) beats chance, 1 / ``choices``.
* ``merino_heldout`` (``loglikelihood_rolling``: word and byte perplexity, bits per byte): the
  held-out documents themselves, like lm-eval's ``wikitext`` task.

Generation is a pure function of the documents and the seed.  Built-in task names are passed to
lm-eval as they are; :data:`PAPER_TASK_DATA` names the data set each one reads, so a missing
data set is reported before lm-eval starts (see :func:`merino.evaluate.check_task_data`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

CONTINUATION_TASK = "merino_continuation"
WORD_ORDER_TASK = "merino_word_order"
HELDOUT_TASK = "merino_heldout"
LOCAL_TASKS = (WORD_ORDER_TASK, CONTINUATION_TASK, HELDOUT_TASK)
TASKS_DIR = Path(__file__).parent / "lm_eval_tasks"  # our own task definitions (Penn Treebank)

# Hub data set (path, config, revision) behind every task of paper Tables 2 and 3, as lm-eval 0.4's task YAMLs
# (and our ptb.yaml) read it; tests/test_evaluate.py checks this table against those YAMLs.
PAPER_TASK_DATA = {
    "hellaswag": ("Rowan/hellaswag", None, None),
    "winogrande": ("allenai/winogrande", "winogrande_xl", None),
    "arc_easy": ("allenai/ai2_arc", "ARC-Easy", None),
    "arc_challenge": ("allenai/ai2_arc", "ARC-Challenge", None),
    "openbookqa": ("allenai/openbookqa", "main", None),
    "boolq": ("aps/super_glue", "boolq", None),
    "wic": ("aps/super_glue", "wic", None),
    "cb": ("aps/super_glue", "cb", None),
    "wsc": ("aps/super_glue", "wsc.fixed", None),
    "rte": ("nyu-mll/glue", "rte", None),
    "pubmedqa": ("bigbio/pubmed_qa", "pubmed_qa_labeled_fold0_source", None),
    "logiqa": ("EleutherAI/logiqa", "logiqa", None),
    "wikitext": ("EleutherAI/wikitext_document_level", "wikitext-2-raw-v1", None),
    "ptb": ("ptb-text-only/ptb_text_only", "penn_treebank", "refs/convert/parquet"),
}
PERPLEXITY_TASKS = {HELDOUT_TASK: "heldout", "wikitext": "wikitext2", "ptb": "ptb"}


def _spans(
    words: list[list[str]],
    items: int,
    context_words: int,
    continuation_words: int,
    min_documents: int,
    rng: np.random.Generator,
    task: str,
):
    """``items`` draws of (document index, context words, true continuation words, eligible documents)."""
    span = context_words + continuation_words
    eligible = [i for i, w in enumerate(words) if len(w) >= span]
    if len(eligible) < min_documents:
        raise ValueError(
            f"{task}: only {len(eligible)} held-out documents have {span} words (context_words + "
            f"continuation_words), {min_documents} needed: shorten the spans in "
            "evaluation.local_tasks.multiple_choice or enlarge data.corpus.test_fraction"
        )
    for _ in range(items):
        doc = int(rng.choice(eligible))
        start = int(rng.integers(0, len(words[doc]) - span + 1))
        yield doc, words[doc][start : start + context_words], words[doc][start + context_words : start + span], eligible


def _item(context: list[str], candidates: list[list[str]], doc: int, rng: np.random.Generator) -> dict:
    """Candidates shuffled; the first one given is the true continuation."""
    order = rng.permutation(len(candidates))
    return {
        "context": " ".join(context),
        "choices": [" ".join(candidates[k]) for k in order],
        "label": int(np.flatnonzero(order == 0)[0]),
        "document": doc,
    }


def continuation_items(
    documents: list[str], items: int, context_words: int, continuation_words: int, choices: int, seed: int
) -> list[dict]:
    """Multiple-choice items: the true continuation of a passage against spans of other documents."""
    words = [doc.split() for doc in documents]
    rng = np.random.default_rng([seed, 0, items, context_words, continuation_words, choices])
    out = []
    for doc, context, true, eligible in _spans(
        words, items, context_words, continuation_words, choices, rng, CONTINUATION_TASK
    ):
        others = rng.choice([i for i in eligible if i != doc], size=choices - 1, replace=False)
        starts = [int(rng.integers(0, len(words[o]) - continuation_words + 1)) for o in others]
        out.append(
            _item(context, [true, *[words[o][s : s + continuation_words] for o, s in zip(others, starts)]], doc, rng)
        )
    return out


def word_order_items(
    documents: list[str], items: int, context_words: int, continuation_words: int, choices: int, seed: int
) -> list[dict]:
    """Multiple-choice items: the true continuation against the same words in other orders (spans whose
    words allow fewer distinct orders are drawn again)."""
    words = [doc.split() for doc in documents]
    rng = np.random.default_rng([seed, 1, items, context_words, continuation_words, choices])
    out = []
    for _ in range(100):
        if len(out) == items:
            return out
        for doc, context, true, _ in _spans(
            words, items - len(out), context_words, continuation_words, 1, rng, WORD_ORDER_TASK
        ):
            candidates = [true]
            for _ in range(20 * choices):
                order = [true[k] for k in rng.permutation(len(true))]
                if order not in candidates:
                    candidates.append(order)
                if len(candidates) == choices:
                    out.append(_item(context, candidates, doc, rng))
                    break
    raise ValueError(
        f"evaluation.local_tasks: too few held-out spans of {continuation_words} words have {choices} "
        "distinct word orders; raise continuation_words"
    )


def heldout_documents(documents: list[str], max_documents: int | None) -> list[dict]:
    docs = [d for d in documents if d.strip()]
    return [{"text": d} for d in (docs if max_documents is None else docs[:max_documents])]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _task_yaml(name: str, data_file: Path, spec: dict) -> dict:
    return {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file.resolve())}},
        "test_split": "test",
        **spec,
        "metadata": {"version": 1.0},
    }


def write_local_tasks(documents: list[str], settings: dict, out_dir: str | Path) -> dict:
    """Writes the local tasks (JSONL data + lm-eval YAML) into ``out_dir``; returns their summary.

    ``settings`` is ``config["evaluation"]["local_tasks"]``: ``multiple_choice`` (items, context_words,
    continuation_words, choices, seed; shared by both multiple-choice tasks) and ``heldout``
    (max_documents)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    c = settings["multiple_choice"]
    args = (c["items"], c["context_words"], c["continuation_words"], c["choices"], c["seed"])
    # doc_to_* name the items' fields: lm-eval reads them as they are (a "{{...}}" template would be
    # compiled by jinja for every item, a third of an evaluation's time on these small models)
    multiple_choice = {
        "output_type": "multiple_choice",
        "doc_to_text": "context",
        "doc_to_choice": "choices",
        "doc_to_target": "label",
        "target_delimiter": " ",
        "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True} for m in ("acc", "acc_norm")],
    }
    rolling = {
        "output_type": "loglikelihood_rolling",
        "doc_to_text": "",
        "doc_to_target": "text",
        "metric_list": [{"metric": m} for m in ("word_perplexity", "byte_perplexity", "bits_per_byte")],
    }
    tasks = {
        WORD_ORDER_TASK: (word_order_items(documents, *args), multiple_choice),
        CONTINUATION_TASK: (continuation_items(documents, *args), multiple_choice),
        HELDOUT_TASK: (heldout_documents(documents, settings["heldout"].get("max_documents")), rolling),
    }
    summary = {}
    for name, (rows, spec) in tasks.items():
        _write_jsonl(out / f"{name}.jsonl", rows)
        (out / f"{name}.yaml").write_text(
            yaml.safe_dump(_task_yaml(name, out / f"{name}.jsonl", spec), sort_keys=False)
        )
        summary[name] = (
            {"documents": len(rows)} if name == HELDOUT_TASK else {"items": len(rows), "chance": 1 / c["choices"]}
        )
    return summary
