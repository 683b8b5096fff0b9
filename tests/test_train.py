"""Training: learning happens, SIGTERM saves a checkpoint and stops, resume after SIGTERM or SIGKILL
continues exactly, DDP on 2 processes equals 1 process with the same global batch, non-finite loss and
corrupt checkpoints stop clearly."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from merino import train as train_module
from merino.corpus import load_corpus
from merino.model import MerinoConfig
from merino.token_cache import build_token_cache
from merino.tokenizer import train_tokenizer
from merino.train import TrainConfig, TrainingError, TrainJob, launch, launch_command, lr_at, read_log, train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def token_cache(tmp_path_factory):
    corpus = load_corpus({"source": "embedded", "max_chars": 150_000})
    tokenizer = train_tokenizer(corpus, vocab_size=512)
    out = tmp_path_factory.mktemp("tokens")
    build_token_cache(corpus, tokenizer, out)
    return out, tokenizer


def tiny_config(vocab_size):
    return MerinoConfig(
        vocab_size=vocab_size,
        embed_proj_dim=64,
        max_position_embeddings=64,
        head_dim=32,
        block_embed_dims=[64, 96],
        block_ffn_dims=[128, 96],
        block_depths=[2, 1],
    )


def tiny_training(**kw):
    args = dict(
        steps=30,
        batch_size=8,
        micro_batch_size=4,
        seq_len=32,
        lr=3e-3,
        warmup_steps=3,
        checkpoint_every=10,
        log_every=1,
        eval_batches=4,
        seed=0,
        device="cpu",
    )
    args.update(kw)
    return TrainConfig(**args)


def test_lr_schedule():
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1.0)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(55, cfg) == pytest.approx(0.5) and lr_at(100, cfg) == 0.0


def test_training_learns_and_writes_outputs(tmp_path, token_cache):
    cache, tokenizer = token_cache
    metrics = train(
        tiny_config(len(tokenizer)),
        cache,
        tmp_path / "model",
        tiny_training(eval_steps=(15,)),
        work_dir=tmp_path / "work",
        tokenizer=tokenizer,
        progress=False,
    )
    log = read_log(tmp_path / "model" / "log.jsonl")
    assert len(log) == 30 and log[-1]["step"] == 30
    half, full = metrics["val_history"]  # the intermediate evaluation, merged into step 15's record, and the final
    assert half["step"] == 15 and log[14]["val_perplexity"] == half["val_perplexity"] and "loss" in log[14]
    assert (
        full == {"step": 30, "val_perplexity": metrics["val_perplexity"]}
        and full["val_perplexity"] < half["val_perplexity"]
    )
    assert sum(r["loss"] for r in log[-5:]) / 5 < sum(r["loss"] for r in log[:3]) / 3 - 0.5  # nats
    assert metrics["val_perplexity"] < len(tokenizer) and metrics["resumed_at"] == []
    for name in ("model.safetensors", "config.json", "metrics.json", "loss.pdf", "tokenizer.json"):
        assert (tmp_path / "model" / name).exists(), name
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "model").iterdir()}
    assert len(set(modes.values())) == 1, modes  # the weights readable like the rest (safetensors writes 0600)
    assert (tmp_path / "work" / "checkpoint" / "model.safetensors").stat().st_mode & 0o777 == modes["config.json"]


def _job(tmp_path, token_cache, name, **training):
    cache, tokenizer = token_cache
    job = tmp_path / f"{name}.json"
    job.write_text(
        json.dumps(
            {
                "model_config": tiny_config(len(tokenizer)).to_dict(),
                "cache_dir": str(cache),
                "out_dir": str(tmp_path / name),
                "work_dir": str(tmp_path / f"{name}-work"),
                "training": asdict(tiny_training(**training)),
            }
        )
    )
    return job


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}


def _wait_for(path: Path, step: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    """Until the checkpoint state or training log at ``path`` has reached ``step`` (or the run ended)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if path.exists():
            lines = path.read_text().splitlines()
            last = json.loads(lines[-1]) if lines and lines[-1].endswith("}") else {}
            if last.get("step", 0) >= step:
                return
        time.sleep(0.05)


@pytest.mark.slow
def test_sigterm_then_sigkill_resume_where_an_uninterrupted_run_ends(tmp_path, token_cache):
    full = _job(tmp_path, token_cache, "full", steps=40)
    subprocess.run([sys.executable, "-m", "merino.train", str(full)], check=True, env=_env(), timeout=300)
    work = tmp_path / "stopped-work"
    # SIGTERM (Slurm's requeue, preemption, time limit): a checkpoint of the step in progress, although
    # checkpoint_every is longer than the run
    stopped = _job(tmp_path, token_cache, "stopped", steps=40, checkpoint_every=1000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "merino.train", str(stopped)], env=_env(), stderr=subprocess.PIPE, text=True
    )
    _wait_for(work / "log.jsonl", 8, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "TrainingStopped: stopped by SIGTERM after step" in err, err[-3000:]
    first_stop = json.loads((work / "checkpoint" / "state.json").read_text())["step"]
    assert 8 <= first_stop < 40 and not (tmp_path / "stopped" / "metrics.json").exists()
    # SIGKILL (node failure, out of memory): back to the last periodic checkpoint
    killed = _job(tmp_path, token_cache, "stopped", steps=40, checkpoint_every=10)
    proc = subprocess.Popen([sys.executable, "-m", "merino.train", str(killed)], env=_env())
    _wait_for(work / "checkpoint" / "state.json", 20, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "stopped" / "metrics.json").exists(), "the run finished before it could be killed"
    subprocess.run([sys.executable, "-m", "merino.train", str(killed)], check=True, env=_env(), timeout=300)
    metrics = json.loads((tmp_path / "stopped" / "metrics.json").read_text())
    assert metrics["resumed_at"][0] == first_stop and metrics["resumed_at"][1] >= 20
    a, b = read_log(tmp_path / "full" / "log.jsonl"), read_log(tmp_path / "stopped" / "log.jsonl")
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 41))
    assert b[-1]["loss"] == pytest.approx(a[-1]["loss"], rel=1e-4)
    full_metrics = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert metrics["val_loss"] == pytest.approx(full_metrics["val_loss"], rel=1e-4)


@pytest.mark.slow
def test_ddp_two_processes_equal_one(tmp_path, token_cache):
    one = _job(tmp_path, token_cache, "one", steps=5)
    two = _job(tmp_path, token_cache, "two", steps=5)
    subprocess.run([sys.executable, "-m", "merino.train", str(one)], check=True, env=_env(), timeout=300)
    subprocess.run(launch_command(two, gpus_per_node=2), check=True, env=_env(), timeout=300)
    a, b = read_log(tmp_path / "one" / "log.jsonl"), read_log(tmp_path / "two" / "log.jsonl")
    assert len(a) == len(b) == 5
    for x, y in zip(a, b):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-4)


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path, token_cache, monkeypatch):
    cache, tokenizer = token_cache
    real = train_module.model_loss
    calls = {"n": 0}

    def poisoned(model, seq, reduction="mean"):
        calls["n"] += 1
        loss = real(model, seq, reduction)
        return loss * float("nan") if calls["n"] > 2 * 12 else loss  # 2 micro-batches per step; NaN at step 13

    monkeypatch.setattr(train_module, "model_loss", poisoned)
    with pytest.raises(TrainingError, match="non-finite loss"):
        train(
            tiny_config(len(tokenizer)), cache, tmp_path / "m", tiny_training(), work_dir=tmp_path / "w", progress=False
        )
    state = json.loads((tmp_path / "w" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 10


def test_corrupt_checkpoint_is_named(tmp_path, token_cache):
    cache, tokenizer = token_cache
    cfg = tiny_training(steps=10, checkpoint_every=5)
    train(tiny_config(len(tokenizer)), cache, tmp_path / "m", cfg, work_dir=tmp_path / "w", progress=False)
    (tmp_path / "w" / "checkpoint" / "model.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match="corrupt or incomplete"):
        train(tiny_config(len(tokenizer)), cache, tmp_path / "m2", cfg, work_dir=tmp_path / "w", progress=False)


def test_batch_must_divide(tmp_path, token_cache):
    cache, tokenizer = token_cache
    with pytest.raises(ValueError, match="micro_batch_size"):
        train(tiny_config(len(tokenizer)), cache, tmp_path / "m", tiny_training(batch_size=6), progress=False)


def test_launch_command_follows_the_resources(tmp_path):
    assert launch_command(tmp_path / "job.json", gpus_per_node=0) is None
    assert launch_command(tmp_path / "job.json", gpus_per_node=1) is None
    assert "--nproc_per_node=4" in launch_command(tmp_path / "job.json", gpus_per_node=4)
    with pytest.raises(RuntimeError, match="SLURM allocation"):
        launch_command(tmp_path / "job.json", gpus_per_node=8, nodes=2, env={})


def test_launch_trains_here_or_hands_torchrun_the_job_file(tmp_path, token_cache, monkeypatch):
    cache, tokenizer = token_cache
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    job = TrainJob(
        tiny_config(len(tokenizer)),
        str(cache),
        str(tmp_path / "here"),
        str(tmp_path / "here-work"),
        tiny_training(steps=2),
        str(tmp_path / "tokenizer"),
    )
    launch(job, gpus_per_node=0)  # one process: this one, no job file
    assert json.loads((tmp_path / "here" / "metrics.json").read_text())["steps"] == 2
    assert (tmp_path / "here" / "tokenizer.json").exists() and not (tmp_path / "here-work" / "job.json").exists()
    commands = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kw: commands.append(command))
    launch(job, gpus_per_node=4)
    job_file = tmp_path / "here-work" / "job.json"
    assert commands == [launch_command(job_file, gpus_per_node=4)]
    assert json.dumps(TrainJob.load(job_file).to_dict()) == json.dumps(job.to_dict())  # what torchrun's processes read


def test_an_edited_run_starts_over_instead_of_resuming(tmp_path, token_cache):
    cache, tokenizer = token_cache
    work = tmp_path / "w"
    train(tiny_config(len(tokenizer)), cache, tmp_path / "a", tiny_training(steps=10), work_dir=work, progress=False)
    again = train(
        tiny_config(len(tokenizer)),
        cache,
        tmp_path / "b",
        tiny_training(steps=10, log_every=2),
        work_dir=work,
        progress=False,
    )
    assert again["resumed_at"] == [10]  # logging settings are not part of the run: resumed (nothing left to do)
    edited = train(
        tiny_config(len(tokenizer)),
        cache,
        tmp_path / "c",
        tiny_training(steps=10, lr=1e-3),
        work_dir=work,
        progress=False,
    )
    assert edited["resumed_at"] == [] and edited["steps"] == 10
    assert [r["step"] for r in read_log(work / "log.jsonl")] == list(range(1, 11))


def test_a_kill_between_the_checkpoint_renames_resumes_from_the_old_one(tmp_path, token_cache):
    cache, tokenizer = token_cache
    work = tmp_path / "w"
    train(tiny_config(len(tokenizer)), cache, tmp_path / "a", tiny_training(steps=10), work_dir=work, progress=False)
    os.replace(work / "checkpoint", work / "checkpoint.old")  # as if killed after the first rename
    resumed = train(
        tiny_config(len(tokenizer)), cache, tmp_path / "b", tiny_training(steps=20), work_dir=work, progress=False
    )
    assert resumed["resumed_at"] == []  # steps changed (schedule differs): a different run, started over
    train(tiny_config(len(tokenizer)), cache, tmp_path / "c", tiny_training(steps=20), work_dir=work, progress=False)
    os.replace(work / "checkpoint", work / "checkpoint.old")
    again = train(
        tiny_config(len(tokenizer)), cache, tmp_path / "d", tiny_training(steps=20), work_dir=work, progress=False
    )
    assert again["resumed_at"] == [20]
