"""The paper's baselines (Tables 2 and 3) and naive-scaling GPT models (Fig. 5).

* :data:`PAPER_BASELINES`: Pythia-70M / 162M, Cerebras-GPT-111M, GPT-2-124M, OPT-125M / 350M as
  transformers config classes with their published hyper-parameters, so parameters, FLOPs and
  latency need no download; their weights (and accuracies) come from the Hub id beside them.
  :func:`baseline_cost` counts FLOPs with the convention of :mod:`merino.cost` (every matmul of one
  forward pass over ``seq_len`` tokens, attention's T x T products included), with and without the
  LM head: the paper's Table 3 uses the head for Pythia, Cerebras and GPT-2 but not for OPT.
* :func:`naive_architecture`: a standard GPT (one block of identical, unshared layers, FFN
  ``ffn_ratio`` x E, embeddings as wide as the layers) scaled to a FLOPs budget the naive way,
  in depth only or width only (paper Sec. 5: "naive scaling").
"""

from __future__ import annotations

from dataclasses import dataclass

from .cost import Budget, CostModel
from .space import Architecture, Block


@dataclass(frozen=True)
class Baseline:
    hub_id: str
    model_type: str
    config: dict


PAPER_BASELINES = {
    "Pythia-70M": Baseline(
        "EleutherAI/pythia-70m",
        "gpt_neox",
        dict(
            vocab_size=50304,
            hidden_size=512,
            num_hidden_layers=6,
            num_attention_heads=8,
            intermediate_size=2048,
            max_position_embeddings=2048,
            rotary_pct=0.25,
            use_parallel_residual=True,
            tie_word_embeddings=False,
        ),
    ),
    "Pythia-162M": Baseline(
        "EleutherAI/pythia-160m",
        "gpt_neox",
        dict(
            vocab_size=50304,
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            max_position_embeddings=2048,
            rotary_pct=0.25,
            use_parallel_residual=True,
            tie_word_embeddings=False,
        ),
    ),
    "Cerebras-111M": Baseline(
        "cerebras/Cerebras-GPT-111M",
        "gpt2",
        dict(vocab_size=50257, n_embd=768, n_layer=10, n_head=12, n_inner=3072, n_positions=2048),
    ),
    "GPT-2-124M": Baseline(
        "openai-community/gpt2", "gpt2", dict(vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_positions=1024)
    ),
    "OPT-125M": Baseline(
        "facebook/opt-125m",
        "opt",
        dict(
            vocab_size=50272,
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            ffn_dim=3072,
            max_position_embeddings=2048,
            word_embed_proj_dim=768,
            do_layer_norm_before=True,
        ),
    ),
    "OPT-350M": Baseline(
        "facebook/opt-350m",
        "opt",
        dict(
            vocab_size=50272,
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            ffn_dim=4096,
            max_position_embeddings=2048,
            word_embed_proj_dim=512,
            do_layer_norm_before=False,
        ),
    ),
}


def baseline_config(name: str):
    """The transformers config of a paper baseline (no download)."""
    from transformers import AutoConfig

    if name not in PAPER_BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {sorted(PAPER_BASELINES)}")
    b = PAPER_BASELINES[name]
    return AutoConfig.for_model(b.model_type, **b.config)


def baseline_model(name: str, device: str = "meta"):
    """A randomly initialised baseline (``meta``: shapes only), e.g. for parameter counts and latency; no KV
    cache (one forward pass, as MeRino's)."""
    import torch
    from transformers import AutoModelForCausalLM

    config = baseline_config(name)
    config.use_cache = False
    with torch.device(device):
        return AutoModelForCausalLM.from_config(config)


def _shape(config) -> dict:
    """hidden width, FFN width, layers, vocabulary and LM-head input width of a GPT-2 / GPT-NeoX / OPT config."""
    if config.model_type == "gpt2":
        return dict(
            h=config.n_embd,
            f=config.n_inner or 4 * config.n_embd,
            layers=config.n_layer,
            vocab=config.vocab_size,
            head_in=config.n_embd,
            proj=0,
        )
    if config.model_type == "gpt_neox":
        return dict(
            h=config.hidden_size,
            f=config.intermediate_size,
            layers=config.num_hidden_layers,
            vocab=config.vocab_size,
            head_in=config.hidden_size,
            proj=0,
        )
    if config.model_type == "opt":
        proj = config.word_embed_proj_dim if config.word_embed_proj_dim != config.hidden_size else 0
        return dict(
            h=config.hidden_size,
            f=config.ffn_dim,
            layers=config.num_hidden_layers,
            vocab=config.vocab_size,
            head_in=config.word_embed_proj_dim,
            proj=proj,
        )
    raise ValueError(f"no FLOPs formula for model type {config.model_type!r}")


def baseline_cost(name: str, seq_len: int = 1024) -> dict:
    """Parameters (counted on the instantiated model) and FLOPs of one forward pass over ``seq_len`` tokens."""
    import torch

    config = baseline_config(name)
    s = _shape(config)
    t, h = seq_len, s["h"]
    layers = s["layers"] * 2 * (t * (4 * h * h + 2 * h * s["f"]) + 2 * t * t * h)
    projections = 2 * (2 * t * s["proj"] * h)  # OPT-350M: project_in and project_out
    head = 2 * t * s["head_in"] * s["vocab"]
    model = baseline_model(name)
    params = sum(p.numel() for p in model.parameters())  # shared (tied) tensors once
    embedding = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding))
    return {
        "params": params,
        "non_embedding_params": params - embedding,
        "flops": float(layers + projections),
        "flops_with_lm_head": float(layers + projections + head),
        "seq_len": seq_len,
        "hub_id": PAPER_BASELINES[name].hub_id,
    }


NAIVE_SCALINGS = ("depth", "width")


def naive_architecture(
    cost: CostModel,
    budget: Budget,
    scaling: str,
    base_width: int,
    base_depth: int,
    ffn_ratio: int,
    max_depth: int = 256,
) -> tuple[Architecture, dict]:
    """The largest uniform GPT within ``budget``: ``depth`` adds layers of width ``base_width``, ``width``
    widens ``base_depth`` layers (in steps of one attention head).  Returns the architecture and the
    model-convention overrides it needs (embedding width = layer width, no weight sharing)."""
    if scaling not in NAIVE_SCALINGS:
        raise ValueError(f"naive scaling {scaling!r}: expected one of {NAIVE_SCALINGS}")
    if budget.kind not in ("flops", "params"):
        raise ValueError(f"naive scaling takes a flops or params budget, not {budget.label!r}")
    step = cost.head_dim

    def price(e: int, depth: int) -> float:
        model = CostModel(**{**cost.__dict__, "embed_proj_dim": e, "shared": False})
        return model.cost(budget.kind, Architecture((Block(e, ffn_ratio * e, depth),)))

    if scaling == "depth":
        if base_width % step:
            raise ValueError(f"naive scaling base_width={base_width} is not a multiple of head_dim={step}")
        e, depth = base_width, 1
        while depth < max_depth and price(e, depth + 1) <= budget.value:
            depth += 1
    else:
        e, depth = step, base_depth
        while price(e + step, depth) <= budget.value:
            e += step
    if price(e, depth) > budget.value:
        raise ValueError(
            f"naive {scaling} scaling: the smallest model ({depth} layer(s) of width {e}) already "
            f"exceeds budget {budget.label}"
        )
    arch = Architecture((Block(e, ffn_ratio * e, depth),), name=f"naive-{scaling}@{budget.label}")
    return arch, {"embed_proj_dim": e, "weight_sharing": False}
