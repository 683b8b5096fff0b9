"""Evaluation: generated lm-eval tasks (deterministic, hard enough), real lm-eval in-process and through
its CLI, clear errors for built-in tasks without data, the paper's baselines and naive scaling."""

import json
import subprocess
import sys

import hub_staging
import pytest
import torch

from merino import evaluate as evaluate_module
from merino.baselines import PAPER_BASELINES, baseline_cost, naive_architecture
from merino.corpus import load_corpus
from merino.cost import Budget, CostModel
from merino.evaluate import TaskDataError, check_task_data, evaluate, summarize, write_staged_tasks
from merino.model import MerinoConfig, MerinoForCausalLM
from merino.tasks import continuation_items, word_order_items, write_local_tasks
from merino.token_cache import build_token_cache
from merino.tokenizer import train_tokenizer
from merino.train import TrainConfig, train

TASKS = {
    "multiple_choice": {"items": 200, "context_words": 8, "continuation_words": 4, "choices": 4, "seed": 0},
    "heldout": {"max_documents": 4},
}


@pytest.fixture(scope="module")
def corpus():
    return load_corpus({"source": "embedded", "max_chars": 200_000, "validation_fraction": 0.1, "test_fraction": 0.25})


def test_task_generation_is_deterministic_and_well_formed(corpus, tmp_path):
    docs = corpus.splits["test"]
    a = write_local_tasks(docs, TASKS, tmp_path / "a")
    write_local_tasks(docs, TASKS, tmp_path / "b")
    for name in ("merino_word_order", "merino_continuation", "merino_heldout"):
        assert (tmp_path / "a" / f"{name}.jsonl").read_bytes() == (tmp_path / "b" / f"{name}.jsonl").read_bytes()
    assert a["merino_word_order"] == {"items": 200, "chance": 0.25} and a["merino_heldout"]["documents"] == 4
    other = continuation_items(docs, 60, 8, 4, 4, seed=1)
    assert other != continuation_items(docs, 60, 8, 4, 4, seed=0)
    words = [d.split() for d in docs]
    labels = set()
    for item in continuation_items(docs, 60, 8, 4, 4, seed=0):
        true = item["choices"][item["label"]]
        assert f"{item['context']} {true}" in " ".join(words[item["document"]])  # the passage, continued
        assert len(set(item["choices"])) == 4 and all(len(c.split()) == 4 for c in item["choices"])
        labels.add(item["label"])
    for item in word_order_items(docs, 60, 8, 4, 4, seed=0):
        true = item["choices"][item["label"]]
        assert (
            all(sorted(c.split()) == sorted(true.split()) for c in item["choices"]) and len(set(item["choices"])) == 4
        )
        labels.add(item["label"])
    assert labels == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="held-out documents have"):
        continuation_items(docs[:2], 5, 8, 4, 4, seed=0)


@pytest.fixture(scope="module")
def checkpoints(corpus, tmp_path_factory):
    """A tiny model trained briefly on the training split, and the same model untrained; the tasks."""
    root = tmp_path_factory.mktemp("eval")
    tokenizer = train_tokenizer(corpus, vocab_size=512)
    build_token_cache(corpus, tokenizer, root / "tokens")
    config = MerinoConfig(
        vocab_size=len(tokenizer),
        embed_proj_dim=64,
        max_position_embeddings=64,
        head_dim=32,
        block_embed_dims=[64, 64],
        block_ffn_dims=[256, 256],
        block_depths=[2, 1],
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.set_num_threads(1)
    train(
        config,
        root / "tokens",
        root / "trained",
        TrainConfig(
            steps=400,
            batch_size=16,
            micro_batch_size=16,
            seq_len=32,
            lr=3e-3,
            warmup_steps=25,
            checkpoint_every=400,
            log_every=50,
            eval_batches=2,
            device="cpu",
        ),
        work_dir=root / "work",
        tokenizer=tokenizer,
    )
    torch.manual_seed(0)
    MerinoForCausalLM(config).save_pretrained(root / "random")
    tokenizer.save_pretrained(root / "random")
    write_local_tasks(corpus.splits["test"], TASKS, root / "tasks")
    return root


@pytest.mark.slow
def test_a_trained_model_beats_chance_and_a_random_one_does_not(checkpoints):
    acc = {}
    for name in ("trained", "random"):
        results = evaluate(
            checkpoints / name, ["merino_word_order", "merino_heldout"], [checkpoints / "tasks"], batch_size=32
        )
        acc[name] = summarize(results)
    trained, random = acc["trained"]["merino_word_order"], acc["random"]["merino_word_order"]
    assert trained["samples"] == random["samples"] == 200
    # chance is 0.25; 200 items: stderr about 0.03. Measured on this kind of machine: trained 0.555-0.605 over
    # training seeds 0-2, random 0.20-0.265 over initialisation seeds 0-3. (With 60 items and 250 steps the trained
    # model scored 0.38-0.43 here and >= 0.45 on another CPU: float rounding decided the test.)
    assert trained["acc"] >= 0.45, acc
    assert random["acc"] <= 0.4, acc
    assert acc["trained"]["merino_heldout"]["byte_perplexity"] < acc["random"]["merino_heldout"]["byte_perplexity"]


@pytest.mark.slow
def test_integer_kernel_int8_scores_within_a_point_of_the_dequantized_model(checkpoints, tmp_path):
    """GPTQ INT8 run on integer kernels (int8 x int8 MatMulNBits) vs its dequantized weights, same lm-eval tasks."""
    from transformers import AutoTokenizer

    from merino.quantize import QuantSpec, draw_calibration, load_quantized, quantize_model, save_quantized

    model = MerinoForCausalLM.from_pretrained(checkpoints / "trained").eval()
    quantized = quantize_model(
        model, QuantSpec(bits=8, group_size=-1), draw_calibration(checkpoints / "tokens", 16, 32, 0)
    )
    save_quantized(model, quantized, tmp_path)
    AutoTokenizer.from_pretrained(checkpoints / "trained").save_pretrained(tmp_path)
    tasks = ["merino_word_order", "merino_continuation", "merino_heldout"]
    scores = {
        kernels: summarize(
            evaluate(
                tmp_path, tasks, [checkpoints / "tasks"], batch_size=32, model=load_quantized(tmp_path, kernels=kernels)
            )
        )
        for kernels in ("dequantize", "integer")
    }
    for task in ("merino_word_order", "merino_continuation"):
        assert abs(scores["integer"][task]["acc"] - scores["dequantize"][task]["acc"]) <= 0.01, scores
    ppl = [scores[k]["merino_heldout"]["byte_perplexity"] for k in ("dequantize", "integer")]
    assert abs(ppl[1] / ppl[0] - 1) < 0.01, scores


@pytest.mark.slow
def test_lm_eval_cli_gives_the_in_process_numbers(checkpoints, tmp_path):
    tasks = ["merino_word_order", "merino_heldout"]
    ours = summarize(evaluate(checkpoints / "trained", tasks, [checkpoints / "tasks"], batch_size=8, limit=20))
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "lm_eval",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={checkpoints / 'trained'},trust_remote_code=True,dtype=float32",
            "--tasks",
            ",".join(tasks),
            "--include_path",
            str(checkpoints / "tasks"),
            "--batch_size",
            "8",
            "--limit",
            "20",
            "--device",
            "cpu",
            "--output_path",
            str(tmp_path / "cli"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    written = json.loads(next((tmp_path / "cli").rglob("results_*.json")).read_text())
    theirs = summarize(written)
    assert set(theirs) == set(ours)
    for task in tasks:
        for metric, value in ours[task].items():  # perplexity stderrs are bootstrapped: the CLI resamples more
            if not metric.endswith("perplexity_stderr") and metric != "bits_per_byte_stderr":
                assert theirs[task][metric] == pytest.approx(value, rel=1e-6), (task, metric)


def test_builtin_tasks_without_the_hub_fail_with_staging_advice(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(evaluate_module, "_hub_reachable", lambda timeout=5.0: "https://huggingface.co is unreachable")
    with pytest.raises(TaskDataError, match=r"\['hellaswag', 'wikitext'\].*HF_DATASETS_OFFLINE=1.*task_data"):
        check_task_data(["merino_word_order", "hellaswag", "wikitext"], staged={})
    check_task_data(["merino_word_order", "hellaswag"], staged={"hellaswag": {}})  # staged: nothing to fetch

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(TaskDataError, match=r"offline mode.*arc_easy \(allenai/ai2_arc/ARC-Easy\)"):
        check_task_data(["arc_easy", "hellaswag"], staged={})
    (tmp_path / "empty-cache" / "hub" / "datasets--Rowan--hellaswag").mkdir(parents=True)  # `hf download`ed files:
    with pytest.raises(TaskDataError, match=r"no copy of: arc_easy .*, hellaswag"):  # not what datasets reads
        check_task_data(["arc_easy", "hellaswag"], staged={})
    hub_staging.stage_dataset(
        tmp_path / "empty-cache",
        "Rowan/hellaswag",
        None,  # its prepared cache is
        {"validation": hub_staging.task_rows("hellaswag", 2, "validation")},
    )
    with pytest.raises(TaskDataError) as err:
        check_task_data(["arc_easy", "hellaswag"], staged={})
    assert "hellaswag" not in str(err.value).split("no copy of:")[1].split(".")[0]


def test_staged_task_keeps_the_builtin_prompts_with_local_data(tmp_path):
    data = tmp_path / "arc.jsonl"
    data.write_text(
        json.dumps(
            {
                "id": "q1",
                "question": "Which is a gas?",
                "answerKey": "B",
                "choices": {"text": ["iron", "steam"], "label": ["A", "B"]},
            }
        )
        + "\n"
    )
    out = write_staged_tasks(
        {
            "arc_easy": {
                "dataset_path": "json",
                "dataset_name": None,
                "training_split": None,
                "validation_split": None,
                "dataset_kwargs": {"data_files": {"test": str(data)}},
            }
        },
        tmp_path / "staged",
    )
    from lm_eval.tasks import TaskManager

    task = TaskManager(include_path=str(out), include_defaults=False).load_task_or_group(["arc_easy"])["arc_easy"]
    doc = task.test_docs()[0]
    assert task.doc_to_text(doc) == "Question: Which is a gas?\nAnswer:" and task.doc_to_target(doc) == 1
    with pytest.raises(ValueError, match="evaluation.task_data.nonexistent_task"):
        write_staged_tasks({"nonexistent_task": {}}, tmp_path / "bad")


@pytest.mark.parametrize(
    "name, params",
    [
        ("Pythia-70M", 70_426_624),
        ("Pythia-162M", 162_322_944),
        ("GPT-2-124M", 124_439_808),
        ("OPT-125M", 125_239_296),
        ("OPT-350M", 331_196_416),
    ],
)
def test_baseline_architectures_have_their_published_sizes(name, params):
    cost = baseline_cost(name)
    assert cost["params"] == params and cost["hub_id"] == PAPER_BASELINES[name].hub_id


def test_baseline_flops_reproduce_the_paper_table3_column():
    paper = {
        "Pythia-70M": (100, True),
        "Cerebras-111M": (260, True),
        "GPT-2-124M": (290, True),
        "OPT-125M": (210, False),
        "OPT-350M": (720, False),
    }  # (G, counted with the LM head)
    for name, (gflops, head) in paper.items():
        cost = baseline_cost(name)
        ours = cost["flops_with_lm_head" if head else "flops"] / 1e9
        assert ours == pytest.approx(gflops, rel=0.05), name


@pytest.mark.parametrize("scaling", ["depth", "width"])
def test_naive_scaling_is_the_largest_uniform_gpt_within_budget(scaling):
    cost = CostModel(vocab_size=1024, embed_proj_dim=128, max_positions=64, seq_len=64, head_dim=32)
    budget = Budget.parse("flops110M")
    arch, overrides = naive_architecture(cost, budget, scaling, base_width=64, base_depth=2, ffn_ratio=4)
    (block,) = arch.blocks
    assert overrides == {"embed_proj_dim": block.embed_dim, "weight_sharing": False}
    assert block.ffn_dim == 4 * block.embed_dim

    def flops(e, depth):
        return CostModel(**{**cost.__dict__, "embed_proj_dim": e}).flops(type(arch)((type(block)(e, 4 * e, depth),)))

    assert flops(block.embed_dim, block.depth) <= budget.value
    if scaling == "depth":
        assert block.embed_dim == 64 and flops(64, block.depth + 1) > budget.value
    else:
        assert block.depth == 2 and flops(block.embed_dim + 32, 2) > budget.value
    with pytest.raises(ValueError, match="exceeds budget"):
        naive_architecture(cost, Budget.parse("flops1M"), scaling, base_width=64, base_depth=2, ffn_ratio=4)
