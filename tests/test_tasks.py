"""merino.tasks: the paper's task table and the generated local lm-eval tasks, on a synthetic corpus (fast)."""

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from merino.paper import load_reference
from merino.tasks import (
    CONTINUATION_TASK,
    HELDOUT_TASK,
    LOCAL_TASKS,
    PAPER_TASK_DATA,
    PERPLEXITY_TASKS,
    TASKS_DIR,
    WORD_ORDER_TASK,
    continuation_items,
    heldout_documents,
    word_order_items,
    write_local_tasks,
)

REF = load_reference()
# 12 documents of 30 words; every word names its document and position ("d3w17"), so a span tells where it came from
DOCS = [" ".join(f"d{d}w{i}" for i in range(30)) for d in range(12)]


def origin(word: str) -> tuple[int, int]:
    d, w = word[1:].split("w")
    return int(d), int(w)


def test_paper_task_data_covers_tables_2_and_3():
    assert set(PAPER_TASK_DATA) == set(REF["table2_zero_shot"]["tasks"]) | {"wikitext", "ptb"}
    assert all(isinstance(path, str) and "/" in path for path, _, _ in PAPER_TASK_DATA.values())
    assert (TASKS_DIR / "ptb.yaml").is_file()  # our own Penn Treebank task (lm-eval 0.4 has none)


def test_perplexity_tasks_name_table3s_columns():
    assert set(LOCAL_TASKS) == {WORD_ORDER_TASK, CONTINUATION_TASK, HELDOUT_TASK}
    assert PERPLEXITY_TASKS[HELDOUT_TASK] == "heldout"
    paper_columns = REF["table3_language_modeling"]["columns"]
    for task, column in PERPLEXITY_TASKS.items():
        assert task == HELDOUT_TASK or (task in PAPER_TASK_DATA and f"{column}_ppl" in paper_columns), task


def test_continuation_items_continue_the_passage_against_other_documents():
    items = continuation_items(DOCS, items=200, context_words=6, continuation_words=3, choices=4, seed=0)
    assert len(items) == 200
    for item in items:
        context = [origin(w) for w in item["context"].split()]
        true = [origin(w) for w in item["choices"][item["label"]].split()]
        d, start = context[0]
        assert context + true == [(d, start + k) for k in range(9)] and d == item["document"]  # one span, in order
        distractors = [[origin(w) for w in c.split()] for k, c in enumerate(item["choices"]) if k != item["label"]]
        docs = [span[0][0] for span in distractors]
        assert len(set(docs)) == 3 and d not in docs  # three other documents
        assert all(span == [(span[0][0], span[0][1] + k) for k in range(3)] for span in distractors)
    labels = Counter(item["label"] for item in items)
    assert set(labels) == {0, 1, 2, 3} and max(labels.values()) < 2 * min(labels.values())  # shuffled, not fixed


def test_word_order_items_reorder_the_true_continuation():
    items = word_order_items(DOCS, items=50, context_words=5, continuation_words=4, choices=4, seed=3)
    assert len(items) == 50
    for item in items:
        true = item["choices"][item["label"]].split()
        d, start = origin(item["context"].split()[-1])
        assert [origin(w) for w in true] == [(d, start + 1 + k) for k in range(4)]  # in order, right after
        assert len(set(item["choices"])) == 4 and all(sorted(c.split()) == sorted(true) for c in item["choices"])


def test_items_are_a_function_of_the_seed():
    args = {"items": 20, "context_words": 5, "continuation_words": 3, "choices": 3}
    assert continuation_items(DOCS, **args, seed=1) == continuation_items(DOCS, **args, seed=1)
    assert continuation_items(DOCS, **args, seed=1) != continuation_items(DOCS, **args, seed=2)
    assert word_order_items(DOCS, **args, seed=1) == word_order_items(DOCS, **args, seed=1)
    assert word_order_items(DOCS, **args, seed=1) != continuation_items(DOCS, **args, seed=1)


def test_too_short_documents_or_spans_are_named():
    with pytest.raises(ValueError, match=r"merino_continuation: only 0 held-out documents have 40 words"):
        continuation_items(DOCS, 5, context_words=30, continuation_words=10, choices=2, seed=0)
    with pytest.raises(ValueError, match=r"only 3 held-out documents have .* 4 needed"):
        continuation_items(DOCS[:3], 5, context_words=5, continuation_words=3, choices=4, seed=0)
    with pytest.raises(ValueError, match="2 words have 3 distinct word orders; raise continuation_words"):
        word_order_items(DOCS, 5, context_words=5, continuation_words=2, choices=3, seed=0)


def test_heldout_documents_drop_blank_ones_and_cap_the_count():
    docs = ["a b", "  ", "c", "", "d e f"]
    assert heldout_documents(docs, None) == [{"text": "a b"}, {"text": "c"}, {"text": "d e f"}]
    assert heldout_documents(docs, 2) == [{"text": "a b"}, {"text": "c"}]


def test_write_local_tasks_writes_data_and_lm_eval_yaml(tmp_path):
    settings = {
        "multiple_choice": {"items": 30, "context_words": 5, "continuation_words": 4, "choices": 4, "seed": 0},
        "heldout": {"max_documents": 5},
    }
    summary = write_local_tasks(DOCS, settings, tmp_path / "tasks")
    assert summary == {
        WORD_ORDER_TASK: {"items": 30, "chance": 0.25},
        CONTINUATION_TASK: {"items": 30, "chance": 0.25},
        HELDOUT_TASK: {"documents": 5},
    }
    for name in LOCAL_TASKS:
        spec = yaml.safe_load((tmp_path / "tasks" / f"{name}.yaml").read_text())
        assert spec["task"] == name and spec["dataset_path"] == "json" and spec["test_split"] == "test"
        data = spec["dataset_kwargs"]["data_files"]["test"]
        assert data == str((tmp_path / "tasks" / f"{name}.jsonl").resolve())
        rows = [json.loads(line) for line in Path(data).read_text().splitlines()]
        assert len(rows) == (5 if name == HELDOUT_TASK else 30)
        metrics = [m["metric"] for m in spec["metric_list"]]
        if name == HELDOUT_TASK:
            assert spec["output_type"] == "loglikelihood_rolling" and spec["doc_to_target"] == "text"
            assert metrics == ["word_perplexity", "byte_perplexity", "bits_per_byte"] and rows[0] == {"text": DOCS[0]}
        else:
            assert spec["output_type"] == "multiple_choice" and metrics == ["acc", "acc_norm"]
            assert (spec["doc_to_text"], spec["doc_to_choice"], spec["doc_to_target"]) == (
                "context",
                "choices",
                "label",
            )
            assert set(rows[0]) == {"context", "choices", "label", "document"}
