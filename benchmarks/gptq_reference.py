"""Our GPTQ (merino.quantize) against a maintained library, llmcompressor, on a briefly trained GPT-2.

A GPT-2 (transformers' GPT2LMHeadModel, Conv1D layers, random init) is trained for a few hundred steps
on the embedded corpus (English prose shipped with Python, merino.corpus), then quantized to INT8
(per row) and INT4 (groups of 128) by: round-to-nearest; our GPTQ as in the paper (a group's grid
from its weights when its first column is reached) and with static groups (every grid from the
original weights, which is what llmcompressor does); and llmcompressor's ``oneshot`` +
``GPTQModifier(actorder=None)`` (plain GPTQ) on the same model with its Conv1D layers turned into
the equivalent nn.Linear (llmcompressor quantizes nn.Linear only).  All share one calibration set.

Printed: validation perplexity of each; the largest difference between our static-group weights and
the library's, in quantization steps, end to end (the two pipelines differ: llmcompressor calibrates
all modules of a block in one pass, we quantize module by module) and for the same Hessians
(each module's H from the full-precision model, both GPTQ cores on identical W, H and grid), also
with act-order; and our lazy-batch GPTQ against a plain column-by-column implementation of the
paper's equations written here.  Nothing is hard-coded: every figure is measured in this run.

llmcompressor 0.14 needs transformers <= 5.17 (the project pins 5.23), so it lives in its own venv,
which pip gives transformers 5.17 while the project's environment stays untouched; run there with the
project's sources on the path (``--work DIR`` keeps the token cache and the trained model for reruns):

    python -m venv --system-site-packages /work/venv-gptq && /work/venv-gptq/bin/pip install llmcompressor torch==2.13.0
    PYTHONPATH=src /work/venv-gptq/bin/python benchmarks/gptq_reference.py

Without llmcompressor the library columns are skipped and the column-by-column check still runs.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from merino.corpus import load_corpus
from merino.quantize import (
    Conv1D,
    HessianAccumulator,
    QuantSpec,
    conv1d_to_linear,
    draw_calibration,
    gptq_quantize,
    quantizable_modules,
    quantize_model,
)
from merino.token_cache import PackedDataset, batch_indices, build_token_cache
from merino.tokenizer import train_tokenizer
from merino.train import evaluate_perplexity, model_loss


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=600, help="training steps")
    ap.add_argument("--batch", type=int, default=8, help="sequences per training step")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--calibration", type=int, default=64, help="calibration sequences")
    ap.add_argument("--eval-batches", type=int, default=16, help="validation batches of 8 sequences")
    ap.add_argument("--configs", default="8:-1,4:128", help="bits:group_size,... (-1: one group per row)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--work",
        default=None,
        help="directory keeping the token cache and the trained model between runs (default: a temporary one)",
    )
    return ap.parse_args(argv)


# ---- model and data --------------------------------------------------------------------------------------------
def prepare(args, work: Path):
    """A byte-level BPE of the embedded corpus and its token cache (rebuilt only when they differ)."""
    corpus = load_corpus({"source": "embedded"})
    tokenizer = train_tokenizer(corpus, vocab_size=args.vocab)
    cache = work / f"tokens-v{args.vocab}"
    build_token_cache(corpus, tokenizer, cache)
    return tokenizer, cache


def train_gpt2(args, tokenizer, cache: Path, work: Path):
    """A GPT-2 trained from random init with AdamW (warm-up, linear decay); kept in ``work`` for reruns."""
    from transformers import GPT2Config, GPT2LMHeadModel

    saved = work / (
        f"gpt2-{args.layers}x{args.width}-h{args.heads}-v{args.vocab}-"
        f"{args.steps}x{args.batch}x{args.seq_len}-lr{args.lr}-seed{args.seed}"
    )
    if (saved / "config.json").is_file():
        return GPT2LMHeadModel.from_pretrained(saved).eval()
    torch.manual_seed(args.seed)
    config = GPT2Config(
        n_layer=args.layers,
        n_embd=args.width,
        n_head=args.heads,
        vocab_size=len(tokenizer),
        n_positions=args.seq_len,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = GPT2LMHeadModel(config).train()
    data = PackedDataset(cache, "train", args.seq_len)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1, betas=(0.9, 0.95))
    warmup = max(1, args.steps // 10)
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = args.lr * min((step + 1) / warmup, (args.steps - step) / (args.steps - warmup))
        seq = torch.stack([data[int(i)] for i in batch_indices(len(data), args.batch, step, args.seed)])
        model_loss(model, seq).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    model.save_pretrained(saved)
    return model.eval()


def matrices(model: nn.Module) -> dict[str, torch.Tensor]:
    """(out, in) weight of every quantizable module."""
    return {
        n: (m.weight.T if isinstance(m, Conv1D) else m.weight).detach().clone()
        for n, m in quantizable_modules(model).items()
    }


def hessians(model: nn.Module, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each module's H = 2 X Xᵀ / tokens in the full-precision model (one pass, nothing quantized)."""
    accumulators, hooks = {}, []
    for name, module in quantizable_modules(model).items():
        accumulators[name] = HessianAccumulator(module.weight.shape[0 if isinstance(module, Conv1D) else 1], "cpu")
        hooks.append(module.register_forward_pre_hook(accumulators[name]))
    with torch.no_grad():
        for start in range(0, len(tokens), 8):
            model(input_ids=tokens[start : start + 8], use_cache=False)
    for h in hooks:
        h.remove()
    return {n: a.hessian() for n, a in accumulators.items()}


# ---- references ----------------------------------------------------------------------------------------------
def column_by_column_gptq(
    W: torch.Tensor, H: torch.Tensor, bits: int, group_size: int, percdamp: float = 0.01
) -> torch.Tensor:
    """GPTQ without lazy batches (paper Sec. 3, Steps 1 and 3, before Step 2), float64: for each column j,
    quantize it (a group's min-max grid from its current weights), then W[:, j:] -= (w_j - q_j) / U_jj · U[j, j:]
    with U the upper Cholesky factor of (H + λI)⁻¹."""
    W, H = W.double().clone(), H.double().clone()
    cols, maxq = W.shape[1], 2**bits - 1
    gs = cols if group_size == -1 else group_size
    dead = H.diag() == 0
    H[dead, dead], W[:, dead] = 1, 0
    H += percdamp * H.diag().mean() * torch.eye(cols, dtype=H.dtype)
    U = torch.linalg.cholesky(torch.linalg.inv(H), upper=True)
    out = torch.zeros_like(W)
    for j in range(cols):
        if j % gs == 0:
            block = W[:, j : j + gs]
            lo, hi = block.min(1).values.clamp(max=0), block.max(1).values.clamp(min=0)
            scale = (hi - lo) / maxq
            scale[scale == 0] = 2 / maxq
            zero = torch.round(-lo / scale)
        out[:, j] = scale * (torch.clamp(torch.round(W[:, j] / scale) + zero, 0, maxq) - zero)
        W[:, j:] -= ((W[:, j] - out[:, j]) / U[j, j])[:, None] * U[j, j:][None, :]
    return out


def library_args(bits: int, group_size: int, actorder=None):
    from compressed_tensors.quantization import QuantizationArgs

    return QuantizationArgs(
        num_bits=bits,
        type="int",
        symmetric=False,
        actorder=actorder,
        strategy="channel" if group_size == -1 else "group",
        group_size=None if group_size == -1 else group_size,
    )


def library_oneshot(
    model_fp: nn.Module, tokenizer, tokens: torch.Tensor, bits: int, group_size: int, work: Path
) -> nn.Module:
    """llmcompressor's oneshot + GPTQModifier (plain GPTQ: actorder=None) on the nn.Linear form of the model."""
    from compressed_tensors.quantization import QuantizationScheme
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.gptq import GPTQModifier

    model = conv1d_to_linear(model_fp)
    model.config.save_pretrained(work / "library-config")  # oneshot reads the config from name_or_path
    model.config._name_or_path = str(work / "library-config")
    scheme = QuantizationScheme(targets=["Linear"], weights=library_args(bits, group_size))
    recipe = GPTQModifier(
        config_groups={"group_0": scheme}, ignore=["lm_head"], actorder=None, dampening_frac=0.01, block_size=128
    )
    data = Dataset.from_dict({"input_ids": tokens.tolist(), "attention_mask": torch.ones_like(tokens).tolist()})
    with contextlib.redirect_stderr(io.StringIO()):  # its progress bars would bury the figures
        return oneshot(
            model=model,
            tokenizer=tokenizer,
            dataset=data,
            recipe=recipe,
            max_seq_length=tokens.shape[1],
            num_calibration_samples=len(tokens),
            shuffle_calibration_samples=False,
        ).eval()


def library_core(W: torch.Tensor, H: torch.Tensor, bits: int, group_size: int, actorder=None) -> torch.Tensor:
    """llmcompressor's GPTQ core (``quantize_weight``) on W, H with its min-max observer's grid."""
    from llmcompressor.modifiers.gptq.gptq_quantize import quantize_weight
    from llmcompressor.observers import Observer

    args = library_args(bits, group_size, actorder)
    observer = Observer.load_from_registry("memoryless_minmax", base_name="weight", args=args)
    observer(W)
    qparams = observer.get_qparams()
    out, _, _ = quantize_weight(
        W[None].clone(),
        H[None].float().clone(),
        qparams["scale"][None],
        qparams["zero_point"][None],
        None,
        args,
        blocksize=128,
        percdamp=0.01,
    )
    return out[0]


def worst_of(pairs) -> tuple[float, float, str]:
    """Over (name, our QuantizedWeight, other dequantized weight) triples: the largest |difference| in
    quantization steps of our grid, the fraction of all weights that agree (< 1e-3 step), and the module
    with the largest difference ("-" when none differs)."""
    worst, agree, total, where = 0.0, 0, 0, "-"
    for name, q, other in pairs:
        step = q.scales.double().repeat_interleave(q.group_size, dim=1)[:, : q.codes.shape[1]]
        diff = (q.dequantize().double() - other.double()).abs() / step
        agree, total = agree + int((diff < 1e-3).sum()), total + diff.numel()
        if float(diff.max()) > worst:
            worst, where = float(diff.max()), name
    return worst, agree / total, where


# ---- the run ----------------------------------------------------------------------------------------------------
def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.getLogger().setLevel(logging.WARNING)
    try:
        import llmcompressor
        from loguru import logger

        logger.remove()  # its INFO lines would bury the figures
        have_library = True
    except ImportError as err:
        have_library = False
        print(f"llmcompressor not importable ({err}): library columns skipped")
    import transformers

    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"llmcompressor {llmcompressor.__version__ if have_library else '-'}, {args.threads} threads"
    )
    tmp = tempfile.TemporaryDirectory() if args.work is None else None
    work = Path(args.work or tmp.name)
    started = time.perf_counter()
    tokenizer, cache = prepare(args, work)
    model = train_gpt2(args, tokenizer, cache, work)
    print(
        f"GPT-2 {args.layers} layers x {args.width}, vocabulary {len(tokenizer)}, trained {args.steps} steps of "
        f"{args.batch} x {args.seq_len} tokens on the embedded corpus "
        f"(data + training {time.perf_counter() - started:.0f} s)"
    )
    validation = PackedDataset(cache, "validation", args.seq_len)

    def ppl(m):
        return evaluate_perplexity(m, validation, args.eval_batches, 8, torch.device("cpu"))["val_perplexity"]

    calibration = draw_calibration(cache, args.calibration, args.seq_len, seed=args.seed)
    print(
        f"calibration: {args.calibration} x {args.seq_len} tokens of the training split (seed {args.seed}); "
        f"validation: {min(len(validation), 8 * args.eval_batches)} x {args.seq_len} tokens"
    )
    fp32 = ppl(model)
    W_fp = matrices(model)
    H_fp = hessians(model, calibration.tokens)
    rows = [("FP32", "", fp32, "")]
    checks = []
    for config in args.configs.split(","):
        bits, group_size = map(int, config.split(":"))
        label = f"INT{bits} " + ("per row" if group_size == -1 else f"g{group_size}")
        results = {}
        for name, spec in (
            ("RTN", QuantSpec(bits, group_size, "rtn")),
            ("ours GPTQ (paper: grids as columns are reached)", QuantSpec(bits, group_size)),
            ("ours GPTQ, static groups", QuantSpec(bits, group_size, static_groups=True)),
        ):
            m = copy.deepcopy(model)
            t = time.perf_counter()
            results[name] = quantize_model(m, spec, calibration)
            took = time.perf_counter() - t
            rows.append((label, name, ppl(m), f"{took:.1f} s"))
        if have_library:
            t = time.perf_counter()
            lib = library_oneshot(model, tokenizer, calibration.tokens, bits, group_size, work)
            took = time.perf_counter() - t
            rows.append((label, "llmcompressor GPTQ (actorder=None)", ppl(lib), f"{took:.1f} s"))
            ours = results["ours GPTQ, static groups"].weights
            lib_w = {n: m.weight.detach() for n, m in lib.named_modules() if n in ours}
            first = next(iter(ours))
            checks.append(
                (
                    label,
                    "end to end, our static groups vs llmcompressor",
                    *worst_of((n, q, lib_w[n]) for n, q in ours.items()),
                )
            )
            checks.append(
                (label, "end to end, first module (same inputs)", *worst_of([(first, ours[first], lib_w[first])]))
            )
            for actorder in (None, "static"):
                spec = QuantSpec(bits, group_size, static_groups=True, act_order=actorder is not None)
                checks.append(
                    (
                        label,
                        f"same W, H: our core vs llmcompressor's, actorder={actorder}",
                        *worst_of(
                            (n, gptq_quantize(W, H_fp[n], spec), library_core(W, H_fp[n], bits, group_size, actorder))
                            for n, W in W_fp.items()
                        ),
                    )
                )
            del lib
        checks.append(
            (
                label,
                "same W, H: lazy batches vs column by column (float64)",
                *worst_of(
                    (
                        n,
                        gptq_quantize(W, H_fp[n], QuantSpec(bits, group_size), dtype=torch.float64),
                        column_by_column_gptq(W, H_fp[n], bits, group_size),
                    )
                    for n, W in W_fp.items()
                ),
            )
        )

    print(f"\n{'config':<14}{'method':<50}{'val ppl':>10}{'ratio':>8}{'quantize':>10}")
    for label, name, value, took in rows:
        print(f"{label:<14}{name:<50}{value:>10.3f}{value / fp32:>8.4f}{took:>10}")
    print(f"\n{'config':<14}{'weights compared':<66}{'max |Δw| (steps)':>17}{'agree':>9}  worst module")
    for label, what, worst, agree, module in checks:
        print(f"{label:<14}{what:<66}{worst:>17.3g}{agree:>9.2%}  {module}")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
