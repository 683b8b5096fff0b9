"""Pretraining (paper: AdamW, lr 6e-4, 1000 warm-up steps, linear decay; The Pile, 8 x H100).

One function, :func:`train`, runs on a CPU, one GPU, or several processes under ``torchrun``
(DDP; NCCL on GPUs, Gloo on CPUs) and resumes from its last checkpoint.  Batches are a pure
function of (seed, step), so a resumed run sees exactly the batches an uninterrupted one would,
and the global batch is split over processes x gradient-accumulation micro-batches.

The run's working state lives in ``work_dir`` (kept outside the final output, which a workflow
manager may delete when a job dies): ``checkpoint/`` (model.safetensors, optimizer.pt,
state.json; replaced atomically every ``checkpoint_every`` steps) and ``log.jsonl`` (step,
loss, lr, tokens/s; appended across resumes).  SIGTERM (sent by Slurm before it requeues, preempts or
times out a job, and by ``scancel``) lets the step in progress finish, saves a checkpoint of it and
stops with :class:`TrainingStopped`, so a rerun loses no step.  At the end ``out_dir`` receives the final model
(safetensors + config + tokenizer, loadable with ``AutoModelForCausalLM``), ``log.jsonl``,
``metrics.json`` (validation perplexity, wall time) and ``loss.pdf``.

Several processes: :func:`launch` runs a :class:`TrainJob` in this process or, with several GPUs or nodes,
as ``torchrun --nproc_per_node N -m merino.train job.json`` (under ``srun`` on several nodes; :func:`main`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import plotting
from .model import MerinoConfig, MerinoForCausalLM
from .provenance import share_mode
from .token_cache import PackedDataset, batch_indices, read_cache_meta


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, unusable checkpoint); the last good checkpoint is kept."""


class TrainingStopped(Exception):
    """Training was asked to stop (SIGTERM) and saved a checkpoint of its last step; a rerun resumes from it."""


class _StopOnSigterm:
    """While active, SIGTERM only records the request; the training loop checks it after every step.
    (Signal handlers can be set in the main thread only; elsewhere SIGTERM keeps its default.)"""

    def __init__(self):
        self.requested, self._previous = False, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._request)
        return self

    def _request(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (config ``pretrain.training``)."""

    steps: int = 600_000
    batch_size: int = 1024  # sequences per optimizer step (global, all processes)
    micro_batch_size: int = 16  # sequences per forward pass per process
    seq_len: int = 1024
    lr: float = 6e-4
    warmup_steps: int = 1000
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    checkpoint_every: int = 1000
    log_every: int = 10
    eval_batches: int = 50  # validation batches (of micro_batch_size) for every perplexity
    eval_steps: tuple[int, ...] = ()  # steps after which validation perplexity is also measured (logged)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    bf16: bool = True  # bf16 autocast on CUDA (ignored on CPU)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then linear decay to 0 at ``steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    remaining = cfg.steps - step
    return cfg.lr * max(0.0, remaining / max(1, cfg.steps - cfg.warmup_steps))


# ---- distributed set-up -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _World:
    rank: int
    size: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_world(cfg: TrainConfig) -> _World:
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return _World(rank, size, torch.device("cuda", local))
    return _World(rank, size, torch.device("cpu"))


def _split_batch(cfg: TrainConfig, world: _World) -> int:
    """Micro-batches per process per step; the global batch must divide evenly."""
    per_process, rest = divmod(cfg.batch_size, world.size)
    if rest or per_process % cfg.micro_batch_size:
        raise ValueError(
            f"training.batch_size={cfg.batch_size} must be a multiple of processes ({world.size}) x "
            f"training.micro_batch_size ({cfg.micro_batch_size})"
        )
    return per_process // cfg.micro_batch_size


# ---- checkpoints ----------------------------------------------------------------------------------------
_NOT_IN_FINGERPRINT = ("checkpoint_every", "log_every", "eval_batches")


def run_fingerprint(model_config: MerinoConfig, cfg: TrainConfig, cache_dir: str | Path) -> str:
    """sha256 of what determines the training trajectory: model config, training settings (not how
    often it logs or saves) and the data; a checkpoint resumes only a run with the same fingerprint."""
    meta = read_cache_meta(cache_dir)
    model = {k: v for k, v in model_config.to_dict().items() if not k.startswith("_") and k != "transformers_version"}
    training = {k: v for k, v in asdict(cfg).items() if k not in _NOT_IN_FINGERPRINT}
    data = {k: meta[k]["sha256"] for k in ("corpus", "tokenizer")}
    blob = json.dumps({"model": model, "training": training, "data": data}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    tokens: int,
    resumed_at: list[int],
    fingerprint: str,
) -> None:
    """Write model, optimizer and step to ``path`` atomically (temp dir, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(unalias(state), tmp / "model.safetensors")
    share_mode(tmp / "model.safetensors")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    (tmp / "state.json").write_text(
        json.dumps({"step": step, "tokens": tokens, "resumed_at": resumed_at, "fingerprint": fingerprint})
    )
    old = path.with_name(path.name + ".old")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def unalias(state: dict) -> dict:
    """safetensors refuses tensors that share memory (the tied LM head): keep the first name only."""
    seen, out = set(), {}
    for k, v in state.items():
        if v.data_ptr() not in seen:
            seen.add(v.data_ptr())
            out[k] = v
    return out


def _previous_checkpoint(work: Path, fingerprint: str, main: bool) -> Path | None:
    """The checkpoint to resume from: ``work/checkpoint`` (or ``checkpoint.old`` left by a kill
    between the two renames of :func:`_save_checkpoint`) of a run with this fingerprint.  A
    checkpoint of a different run (the model, training settings or data were edited) is discarded
    with its log, so the edited run starts from step 0."""
    for path in (work / "checkpoint", work / "checkpoint.old"):
        if not path.exists():
            continue
        try:
            previous = json.loads((path / "state.json").read_text()).get("fingerprint")
        except (OSError, ValueError, AttributeError) as err:
            raise TrainingError(f"checkpoint {path} is corrupt or incomplete ({err}); delete it to start over") from err
        if previous == fingerprint:
            return path
        if main:
            print(
                f"checkpoint {path} belongs to a different run (model, training settings or data changed): "
                "starting over",
                file=sys.stderr,
            )
            shutil.rmtree(path)
            (work / "log.jsonl").unlink(missing_ok=True)
    return None


def _load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    try:
        state = json.loads((path / "state.json").read_text())
        weights = load_file(path / "model.safetensors")
        missing, unexpected = model.load_state_dict(weights, strict=False)
        tied = set(getattr(model, "_tied_weights_keys", {}) or {})
        if unexpected or set(missing) - tied:
            raise TrainingError(
                f"checkpoint {path} does not fit the model: missing {sorted(set(missing) - tied)}, "
                f"unexpected {sorted(unexpected)}"
            )
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as err:
        raise TrainingError(f"checkpoint {path} is corrupt or incomplete ({err}); delete it to start over") from err
    return state


def _resume(
    work: Path, fingerprint: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer, world: _World
) -> tuple[int, int, list[int]]:
    """Load this run's last checkpoint into ``model`` and ``optimizer``; (step, tokens, steps resumed at) to go on
    from, or (0, 0, []) without one."""
    previous = _previous_checkpoint(work, fingerprint, main=True) if world.main else None
    if world.size > 1:
        dist.barrier()  # rank 0 has discarded a stale checkpoint before the others look
        if not world.main:
            previous = _previous_checkpoint(work, fingerprint, main=False)
    if previous is None:
        return 0, 0, []
    state = _load_checkpoint(previous, model, optimizer)
    return state["step"], state["tokens"], state["resumed_at"] + [state["step"]]


# ---- training loop ---------------------------------------------------------------------------------------
def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay on every matrix (linear weights and both embeddings, 2-d), none on biases and
    LayerNorm parameters (1-d)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


def _batch(data: PackedDataset, indices: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.stack([data[int(i)] for i in indices]).to(device)


@torch.no_grad()
def evaluate_perplexity(
    model: torch.nn.Module, data: PackedDataset, batches: int, micro_batch_size: int, device: torch.device
) -> dict:
    """Mean next-token loss over the first ``batches`` x ``micro_batch_size`` sequences, and its exp."""
    model.eval()
    n = min(len(data), batches * micro_batch_size)
    if n == 0:
        raise ValueError("validation split has no complete sequence; lower seq_len or add data")
    total, count = 0.0, 0
    for start in range(0, n, micro_batch_size):
        seq = _batch(data, np.arange(start, min(n, start + micro_batch_size)), device)
        total += float(model_loss(model, seq, reduction="sum"))
        count += seq[:, 1:].numel()
    model.train()
    return {"val_loss": total / count, "val_perplexity": math.exp(total / count), "val_tokens": count}


def _accumulate_gradients(
    ddp: torch.nn.Module, data: PackedDataset, micro_batches: np.ndarray, world: _World, autocast: torch.autocast
) -> torch.Tensor:
    """Forward and backward over this process's micro-batches (rows of sequence indices) of one step; the
    gradients add up in ``.grad``.  Returns this process's mean loss of the step (detached)."""
    accum = len(micro_batches)
    loss_sum = torch.zeros((), device=world.device)
    for k in range(accum):
        seq = _batch(data, micro_batches[k], world.device)
        # DDP all-reduces gradients in every backward; skip it (no_sync) until the last micro-batch
        sync = k == accum - 1 or world.size == 1
        ctx = ddp.no_sync() if not sync else contextlib.nullcontext()
        with ctx, autocast:
            loss = model_loss(ddp, seq) / accum  # / accum: the sum of the micro-batches' gradients is the mean's
            loss.backward()
        loss_sum += loss.detach()
    return loss_sum


def _agree(loss_sum: torch.Tensor, stop_requested: bool, world: _World) -> tuple[float, bool]:
    """The step's loss averaged over processes, and whether any process was asked to stop (every process
    must stop after the same step, or the others wait forever in the next collective)."""
    if world.size > 1:  # one collective for both
        synced = torch.stack([loss_sum, torch.tensor(float(stop_requested), device=world.device)])
        dist.all_reduce(synced)
        loss_sum, stop_requested = synced[0] / world.size, bool(synced[1] > 0)
    return float(loss_sum), stop_requested


class _TrainingLog:
    """Rank 0's record of the run: ``work/log.jsonl`` (appended across resumes; tokens/s over the steps since
    the previous record) and a progress bar."""

    def __init__(self, work: Path, cfg: TrainConfig, step: int, name: str, progress: bool):
        self.cfg = cfg
        work.mkdir(parents=True, exist_ok=True)
        self.file = open(work / "log.jsonl", "a")  # noqa: SIM115  (open for the whole run; close() closes it)
        self.bar = None
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=cfg.steps, initial=step, desc=f"train {name}", unit="step", mininterval=5)
        self.window_tokens, self.window_start = 0, time.perf_counter()

    def _write(self, record: dict) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()  # a killed job keeps its log up to the last step

    def step(self, step: int, loss: float, lr: float, tokens: int) -> None:
        self.window_tokens += self.cfg.batch_size * self.cfg.seq_len
        if step % self.cfg.log_every == 0 or step == self.cfg.steps:
            now = time.perf_counter()
            self._write(
                {
                    "step": step,
                    "loss": loss,
                    "lr": lr,
                    "tokens": tokens,
                    "tokens_per_s": self.window_tokens / max(now - self.window_start, 1e-9),
                }
            )
            self.window_tokens, self.window_start = 0, now

    def validation(self, step: int, val: dict) -> None:
        self._write({"step": step, "val_loss": val["val_loss"], "val_perplexity": val["val_perplexity"]})

    def progress(self, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.3f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.file.close()


def train(
    model_config: MerinoConfig,
    cache_dir: str | Path,
    out_dir: str | Path,
    cfg: TrainConfig,
    work_dir: str | Path | None = None,
    tokenizer=None,
    progress: bool = True,
) -> dict:
    """Train (or resume from ``work_dir``) a model; see the module docstring for the outputs."""
    out = Path(out_dir)
    work = Path(work_dir) if work_dir is not None else out / "work"

    # ---- set-up: processes, data, model and optimizer (from this run's last checkpoint, if any)
    world = _init_world(cfg)
    accum = _split_batch(cfg, world)
    train_data = PackedDataset(cache_dir, "train", cfg.seq_len)
    torch.manual_seed(cfg.seed)  # the initial weights (every process draws the same)
    model = MerinoForCausalLM(model_config).to(world.device)
    optimizer = _optimizer(model, cfg)
    checkpoint, fingerprint = work / "checkpoint", run_fingerprint(model_config, cfg, cache_dir)
    step, tokens, resumed_at = _resume(work, fingerprint, model, optimizer, world)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world.size > 1 else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=world.device.type == "cuda" and cfg.bf16)
    log = _TrainingLog(work, cfg, step, out.name, progress) if world.main else None
    validation = PackedDataset(cache_dir, "validation", cfg.seq_len) if world.main else None
    started = time.time()
    model.train()

    with _StopOnSigterm() as sigterm:  # SIGTERM: finish this step, checkpoint it, stop
        while step < cfg.steps:
            # ---- one optimizer step.  Its global batch is a pure function of (seed, step), so a resumed run
            # sees the batches an uninterrupted one would; this process takes its rows, in `accum` micro-batches.
            lr = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            indices = batch_indices(len(train_data), cfg.batch_size, step, cfg.seed)
            mine = indices.reshape(world.size, accum, cfg.micro_batch_size)[world.rank]
            loss_sum = _accumulate_gradients(ddp, train_data, mine, world, autocast)
            loss, stopping = _agree(loss_sum, sigterm.requested, world)
            if not math.isfinite(loss):  # before the update: the checkpoint on disk stays good
                raise TrainingError(
                    f"non-finite loss {loss} at step {step}; the last good checkpoint in "
                    f"{checkpoint} is kept (lower training.lr or check the data)"
                )
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            tokens += cfg.batch_size * cfg.seq_len

            # ---- rank 0: log, evaluate (eval_steps), checkpoint (every checkpoint_every, at the end, on SIGTERM)
            if world.main:
                log.step(step, loss, lr, tokens)
                if step in cfg.eval_steps and step < cfg.steps:  # the last step's evaluation is the final one
                    log.validation(
                        step,
                        evaluate_perplexity(model, validation, cfg.eval_batches, cfg.micro_batch_size, world.device),
                    )
                log.progress(loss)
                if step % cfg.checkpoint_every == 0 or step == cfg.steps or stopping:
                    _save_checkpoint(checkpoint, model, optimizer, step, tokens, resumed_at, fingerprint)
            if world.size > 1:
                dist.barrier()  # the others wait for rank 0's checkpoint
            if stopping and step < cfg.steps:
                raise TrainingStopped(
                    f"stopped by SIGTERM after step {step} of {cfg.steps}; checkpoint {checkpoint} "
                    "saved, a rerun resumes from it"
                )

    # ---- the end: rank 0 measures the final validation perplexity and writes the outputs
    metrics = {}
    if world.main:
        log.close()
        metrics = evaluate_perplexity(model, validation, cfg.eval_batches, cfg.micro_batch_size, world.device)
        history = [
            {"step": r["step"], "val_perplexity": r["val_perplexity"]}
            for r in read_log(work / "log.jsonl")
            if "val_perplexity" in r
        ]
        metrics.update(
            val_history=[*history, {"step": step, "val_perplexity": metrics["val_perplexity"]}],
            steps=step,
            tokens=tokens,
            resumed_at=resumed_at,
            train_wall_s=time.time() - started,
            params=sum(p.numel() for p in model.parameters()),
            training=asdict(cfg),
        )
        _save_outputs(out, model, tokenizer, work / "log.jsonl", metrics)
    if world.size > 1:
        dist.barrier()
        dist.destroy_process_group()
    return metrics


def _save_outputs(out: Path, model: MerinoForCausalLM, tokenizer, log: Path, metrics: dict) -> None:
    """The final model (safetensors + config, and the tokenizer: loadable with ``AutoModelForCausalLM``), the
    training log, ``metrics.json`` and the loss curve."""
    model.save_pretrained(out)
    share_mode(out / "model.safetensors")
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    shutil.copyfile(log, out / "log.jsonl")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_loss(out / "log.jsonl", out / "loss.pdf")


def model_loss(model: torch.nn.Module, seq: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy of a packed batch (B, T+1): inputs seq[:, :-1], targets seq[:, 1:]."""
    logits = model(input_ids=seq[:, :-1]).logits  # (B, T, V)
    return torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), seq[:, 1:].flatten(), reduction=reduction)


def read_log(path: str | Path) -> list[dict]:
    """The JSONL training log, one record per step (training and validation entries of a step merged);
    a run resumed after a kill may repeat steps, the last value wins."""
    records = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            records.setdefault(r["step"], {}).update(r)
    return [records[k] for k in sorted(records)]


def plot_loss(log_path: str | Path, out_path: str | Path) -> None:
    """Training loss against step, in the figures' shared style."""
    records = [r for r in read_log(log_path) if "loss" in r]
    with plotting.figure(out_path, figsize=(5, 3.5)) as (fig, ax):
        ax.plot(
            [r["step"] for r in records],
            [r["loss"] for r in records],
            color=plotting.FAMILY_COLOURS[plotting.family(Path(log_path).parent.name)],
        )
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_title(Path(log_path).parent.name)
        plotting.layout(fig)


def launch_command(
    job_file: str | Path, gpus_per_node: int, nodes: int = 1, env: dict | None = None, port: int = 29500
) -> list[str] | None:
    """The command that runs :func:`main` on ``job_file`` with one process per GPU, or ``None`` when
    one process (in this one) is enough.  One node: ``torchrun --standalone``.  Several nodes (inside
    a SLURM allocation): ``srun`` starts one ``torchrun`` per node, meeting at the first node's host."""
    if nodes < 1 or gpus_per_node < 0:
        raise ValueError(f"resources: nodes={nodes} must be >= 1 and gpu={gpus_per_node} >= 0")
    if nodes == 1 and gpus_per_node <= 1:
        return None
    per_node = max(gpus_per_node, 1)
    run = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={per_node}"]
    tail = ["-m", "merino.train", str(job_file)]
    if nodes == 1:
        return [*run, "--standalone", *tail]
    env = os.environ if env is None else env
    if "SLURM_JOB_NODELIST" not in env:
        raise RuntimeError(
            f"resources.nodes={nodes} needs a SLURM allocation (SLURM_JOB_NODELIST is not set); "
            "run through the SLURM profile or set resources.nodes to 1"
        )
    hosts = subprocess.run(
        ["scontrol", "show", "hostnames", env["SLURM_JOB_NODELIST"]], check=True, capture_output=True, text=True
    ).stdout.split()
    return [
        "srun",
        f"--nodes={nodes}",
        "--ntasks-per-node=1",
        *run,
        f"--nnodes={nodes}",
        "--rdzv_backend=c10d",
        f"--rdzv_endpoint={hosts[0]}:{port}",
        f"--rdzv_id={env.get('SLURM_JOB_ID', 'merino')}",
        *tail,
    ]


@dataclass(frozen=True)
class TrainJob:
    """One call of :func:`train`, as the file (``job.json``) that each ``torchrun`` process reads."""

    model_config: MerinoConfig
    cache_dir: str
    out_dir: str
    work_dir: str
    training: TrainConfig
    tokenizer_dir: str | None = None  # a saved tokenizer, copied next to the final model

    def to_dict(self) -> dict:
        return {
            "model_config": self.model_config.to_dict(),
            "cache_dir": str(self.cache_dir),
            "out_dir": str(self.out_dir),
            "work_dir": str(self.work_dir),
            "training": asdict(self.training),
            "tokenizer_dir": None if self.tokenizer_dir is None else str(self.tokenizer_dir),
        }

    @classmethod
    def load(cls, path: str | Path) -> TrainJob:
        job = json.loads(Path(path).read_text())
        return cls(
            MerinoConfig(**job["model_config"]),
            job["cache_dir"],
            job["out_dir"],
            job["work_dir"],
            TrainConfig(**job["training"]),
            job.get("tokenizer_dir"),
        )

    def run(self, progress: bool = True) -> dict:
        """:func:`train` in this process (one of several under ``torchrun``, or alone)."""
        tokenizer = None
        if self.tokenizer_dir:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_dir)
        return train(
            self.model_config,
            self.cache_dir,
            self.out_dir,
            self.training,
            work_dir=self.work_dir,
            tokenizer=tokenizer,
            progress=progress,
        )


def launch(job: TrainJob, gpus_per_node: int = 0, nodes: int = 1) -> None:
    """Run ``job`` on the resources given: in this process (CPU or one GPU), or with one process per GPU
    (:func:`launch_command`), which read ``work_dir/job.json``; their output goes to ``sys.stderr`` (the
    job's log)."""
    job_file = Path(job.work_dir) / "job.json"
    command = launch_command(job_file, gpus_per_node, nodes)
    if command is None:
        job.run()
        return
    job_file.parent.mkdir(parents=True, exist_ok=True)
    job_file.write_text(json.dumps(job.to_dict()))
    subprocess.run(command, check=True, stderr=sys.stderr, stdout=sys.stderr)  # merino: inherited PYTHONPATH


def main(argv: list[str] | None = None) -> None:
    """``python -m merino.train job.json`` (alone or under torchrun): the :class:`TrainJob` in the file."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("job")
    TrainJob.load(ap.parse_args(argv).job).run(progress=int(os.environ.get("RANK", "0")) == 0)


if __name__ == "__main__":
    main()
