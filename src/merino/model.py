"""MeRino as Hugging Face transformers classes (paper Fig. 4).

Token embedding V x D and learned positions P x D; N blocks, block i of width E_i (E_i / head_dim
heads), FFN width F_i and depth L_i, entered through a projection from the previous width when it
differs; a projection back to D after the last block, a final LayerNorm and an LM head tied to the
token embedding.  Every layer is a pre-LayerNorm GPT layer with a ReLU FFN (Eq. 5); with
``weight_sharing`` block i holds ONE layer and applies it L_i times.  Parameter counts equal
``merino.cost.CostModel.params`` exactly.

There is no KV cache: ``generate`` re-runs the whole sequence each step (fine for these small
models and short evaluation prompts).

This file must stay self-contained (torch, transformers and the standard library only): save_pretrained
copies it into every checkpoint, which then loads with ``trust_remote_code=True`` where no other
``merino`` module is importable.  In-process, call :func:`register` to load checkpoints without it.
"""

from __future__ import annotations

import operator

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    GenerationMixin,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutputWithPast


class MerinoConfig(PretrainedConfig):
    r"""Configuration of a MeRino model.

    Args:
        vocab_size (`int`, defaults to 50257): number of tokens V (rows of the tied embedding / LM head).
        embed_proj_dim (`int`, defaults to 768): width D of the token and position embeddings and of the final
            LayerNorm; blocks of another width are entered and left through linear projections.
        max_position_embeddings (`int`, defaults to 2048): number of learned positions P (longest sequence).
        head_dim (`int`, defaults to 64): width of one attention head; block i has E_i / head_dim heads.
        block_embed_dims (`list[int]`, defaults to `(512, 512, 640, 896)`): width E_i of every block, each a
            multiple of `head_dim`.
        block_ffn_dims (`list[int]`, defaults to `(512, 512, 640, 896)`): FFN width F_i of every block.
        block_depths (`list[int]`, defaults to `(2, 3, 2, 1)`): number of layers L_i of every block.
        weight_sharing (`bool`, defaults to `True`): the L_i layers of block i share one set of weights.
        layer_norm_eps (`float`, defaults to 1e-5): epsilon of every LayerNorm.
        initializer_range (`float`, defaults to 0.02): standard deviation of the normal init of linear weights
            and embeddings.
        dropout (`float`, defaults to 0.0): dropout on embeddings, attention probabilities and residual branches.
        tie_word_embeddings (`bool`, defaults to `True`): the LM head reuses the token embedding matrix.
        bos_token_id (`int`, *optional*): beginning-of-sequence token.
        eos_token_id (`int`, *optional*): end-of-sequence token.
        pad_token_id (`int`, *optional*): padding token.
    """

    model_type = "merino"

    vocab_size: int = 50257
    embed_proj_dim: int = 768
    max_position_embeddings: int = 2048
    head_dim: int = 64
    block_embed_dims: list[int] | tuple[int, ...] = (512, 512, 640, 896)
    block_ffn_dims: list[int] | tuple[int, ...] = (512, 512, 640, 896)
    block_depths: list[int] | tuple[int, ...] = (2, 3, 2, 1)
    weight_sharing: bool = True
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    dropout: float = 0.0
    tie_word_embeddings: bool = True
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None

    def __post_init__(self, **kwargs):
        for name in ("vocab_size", "embed_proj_dim", "max_position_embeddings", "head_dim"):
            setattr(self, name, _positive_int(name, getattr(self, name)))
        lengths = {}
        for name in ("block_embed_dims", "block_ffn_dims", "block_depths"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) == 0:
                raise ValueError(f"{name} must be a non-empty list of positive integers (one per block), "
                                 f"got {value!r}")
            setattr(self, name, [_positive_int(f"{name}[{i}]", v) for i, v in enumerate(value)])
            lengths[name] = len(value)
        if len(set(lengths.values())) > 1:
            raise ValueError(f"block_embed_dims, block_ffn_dims and block_depths must have one entry per block; "
                             f"got lengths {lengths!r}: give all three lists the same length")
        for i, e in enumerate(self.block_embed_dims):
            if e % self.head_dim:
                raise ValueError(f"block_embed_dims[{i}]={e!r} is not a multiple of head_dim={self.head_dim!r}: "
                                 f"use a multiple of head_dim (e.g. {max(1, e // self.head_dim) * self.head_dim!r}) "
                                 f"or change head_dim")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout!r}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}")
        if not self.initializer_range >= 0:
            raise ValueError(f"initializer_range must be non-negative, got {self.initializer_range!r}")
        super().__post_init__(**kwargs)

    @classmethod
    def from_architecture(cls, arch, **kwargs) -> "MerinoConfig":
        """Config for ``arch``: any object with int lists ``widths``, ``ffn_dims`` and ``depths``
        (e.g. ``merino.space.Architecture``); ``kwargs`` set the remaining arguments."""
        return cls(block_embed_dims=list(arch.widths), block_ffn_dims=list(arch.ffn_dims),
                   block_depths=list(arch.depths), **kwargs)

    def architecture_dict(self) -> dict:
        """The structure as ``{"E": [...], "F": [...], "L": [...]}`` (the architecture JSON format)."""
        return {"E": list(self.block_embed_dims), "F": list(self.block_ffn_dims), "L": list(self.block_depths)}


def _positive_int(name: str, value) -> int:
    try:
        number = operator.index(value)  # accepts int and NumPy integers, refuses floats and strings
    except TypeError:
        number = None
    if number is None or isinstance(value, bool) or number < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return number


class MerinoAttention(nn.Module):
    """Causal multi-head self-attention: fused Q, K, V projection and an output projection, all with bias."""

    def __init__(self, config: MerinoConfig, embed_dim: int):
        super().__init__()
        self.n_head = embed_dim // config.head_dim
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim)
        self.out = nn.Linear(embed_dim, embed_dim)
        self.attn_dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        B, T, E = x.shape
        q, k, v = self.qkv(x).split(E, dim=2)  # (B, T, E) each
        q = q.view(B, T, self.n_head, E // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, E // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, E // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=mask is None,
            dropout_p=self.attn_dropout if self.training else 0.0,
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, E)  # (B, T, E)
        return self.resid_dropout(self.out(y))


class MerinoLayer(nn.Module):
    """Pre-LayerNorm GPT layer: x + Attn(LN(x)), then x + W2 ReLU(W1 LN(x)) (paper Eq. 5)."""

    def __init__(self, config: MerinoConfig, embed_dim: int, ffn_dim: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(embed_dim, eps=config.layer_norm_eps)
        self.attn = MerinoAttention(config, embed_dim)
        self.ln_2 = nn.LayerNorm(embed_dim, eps=config.layer_norm_eps)
        self.fc_in = nn.Linear(embed_dim, ffn_dim)
        self.fc_out = nn.Linear(ffn_dim, embed_dim)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.dropout(self.fc_out(F.relu(self.fc_in(self.ln_2(x)))))


class WidthProjection(nn.Linear):
    """Linear map between residual streams of different widths (into a block, and back to D).

    Initialised with std 1/sqrt(in_features), which preserves the residual stream's scale (the
    paper does not say how these are initialised).  The 0.02 of the other matrices would shrink
    the stream sqrt(in) * 0.02-fold at every width change, drowning the token signal under the
    layers' outputs: on the embedded study models that slowed training two- to three-fold."""


class MerinoBlock(nn.Module):
    """Block i: a projection from the incoming width when it differs from E_i, then L_i layers.

    With weight sharing ``layers`` holds one MerinoLayer that runs L_i times; otherwise L_i distinct ones.
    """

    def __init__(self, config: MerinoConfig, in_dim: int, embed_dim: int, ffn_dim: int, depth: int):
        super().__init__()
        self.proj = WidthProjection(in_dim, embed_dim) if in_dim != embed_dim else nn.Identity()
        self.depth = depth
        distinct = 1 if config.weight_sharing else depth
        self.layers = nn.ModuleList(MerinoLayer(config, embed_dim, ffn_dim) for _ in range(distinct))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.proj(x)  # (B, T, E_i)
        for i in range(self.depth):
            x = self.layers[i % len(self.layers)](x, mask)
        return x


class MerinoPreTrainedModel(PreTrainedModel):
    config_class = MerinoConfig
    base_model_prefix = "model"
    _input_embed_layer = "wte"
    _no_split_modules = ["MerinoBlock"]  # a shared layer must stay on one device

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            scale = module.in_features**-0.5 if isinstance(module, WidthProjection) else std
            init.normal_(module.weight, mean=0.0, std=scale)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


class MerinoModel(MerinoPreTrainedModel):
    """Embeddings, the N blocks, the projection back to D and the final LayerNorm."""

    def __init__(self, config: MerinoConfig):
        super().__init__(config)
        d = config.embed_proj_dim
        self.wte = nn.Embedding(config.vocab_size, d)
        self.wpe = nn.Embedding(config.max_position_embeddings, d)
        self.drop = nn.Dropout(config.dropout)
        widths = [d, *config.block_embed_dims]
        self.blocks = nn.ModuleList(
            MerinoBlock(config, widths[i], e, f, l)
            for i, (e, f, l) in enumerate(zip(config.block_embed_dims, config.block_ffn_dims, config.block_depths))
        )
        self.proj_out = WidthProjection(widths[-1], d) if widths[-1] != d else nn.Identity()
        self.ln_f = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.post_init()

    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.LongTensor | None = None, inputs_embeds: torch.Tensor | None = None,
                **kwargs) -> BaseModelOutput:
        """``attention_mask`` (B, T): 1 for tokens, 0 for (left) padding; positions then count tokens only.
        ``inputs_embeds`` (B, T, D) replaces the token embedding lookup (positions are still added)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.wte(input_ids)  # (B, T, D)
        B, T = inputs_embeds.shape[:2]
        if T > self.config.max_position_embeddings:
            raise ValueError(f"sequence length {T} exceeds max_position_embeddings="
                             f"{self.config.max_position_embeddings}; truncate the input")
        if position_ids is None:
            if attention_mask is None:
                position_ids = torch.arange(T, device=inputs_embeds.device)[None, :]  # (1, T)
            else:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)
        mask = None if attention_mask is None else _attention_mask(attention_mask)
        x = self.drop(inputs_embeds + self.wpe(position_ids))  # (B, T, D)
        for block in self.blocks:
            x = block(x, mask)
        x = self.ln_f(self.proj_out(x))  # (B, T, D)
        return BaseModelOutput(last_hidden_state=x)


def _attention_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) padding mask -> (B, 1, T, T) boolean "may attend": causal and not padding.

    Every position also sees itself, so the rows of padded queries are never fully masked (no NaN).
    """
    T = attention_mask.shape[-1]
    causal = torch.ones(T, T, dtype=torch.bool, device=attention_mask.device).tril()  # (T, T)
    keep = causal & attention_mask.bool()[:, None, None, :]  # (B, 1, T, T)
    return keep | torch.eye(T, dtype=torch.bool, device=attention_mask.device)


class MerinoForCausalLM(MerinoPreTrainedModel, GenerationMixin):
    """MerinoModel plus the LM head (tied to the token embedding)."""

    _tied_weights_keys = {"lm_head.weight": "model.wte.weight"}

    def __init__(self, config: MerinoConfig):
        super().__init__(config)
        self.model = MerinoModel(config)
        self.lm_head = nn.Linear(config.embed_proj_dim, config.vocab_size, bias=False)
        self.post_init()

    def forward(self, input_ids: torch.LongTensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.LongTensor | None = None, labels: torch.LongTensor | None = None,
                inputs_embeds: torch.Tensor | None = None, **kwargs) -> CausalLMOutputWithPast:
        """``labels`` (B, T) are the inputs themselves (shifted here); -100 marks positions without a loss."""
        hidden = self.model(input_ids, attention_mask=attention_mask, position_ids=position_ids,
                            inputs_embeds=inputs_embeds).last_hidden_state
        logits = self.lm_head(hidden)  # (B, T, V)
        loss = None
        if labels is not None:
            targets = F.pad(labels[:, 1:], (0, 1), value=-100)  # (B, T): the last position predicts nothing
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits)

    # ---- generation without a KV cache ------------------------------------------------------------------
    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        """No cache: keeps ``generate`` from building a DynamicCache."""
        return False

    def prepare_inputs_for_generation(self, input_ids: torch.LongTensor,
                                      attention_mask: torch.Tensor | None = None, **kwargs) -> dict:
        """Every step sees the whole sequence so far (``generate`` would otherwise pass only the new token)."""
        return {"input_ids": input_ids, "attention_mask": attention_mask}


def config_for(arch, convention: dict, tokenizer) -> MerinoConfig:
    """Config of ``arch`` under a workflow ``model`` section (embed_proj_dim, max_positions, head_dim,
    weight_sharing) with the tokenizer's vocabulary size and special tokens."""
    return MerinoConfig.from_architecture(
        arch, vocab_size=len(tokenizer), embed_proj_dim=convention["embed_proj_dim"],
        max_position_embeddings=convention["max_positions"], head_dim=convention["head_dim"],
        weight_sharing=convention["weight_sharing"], bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )


def register() -> None:
    """Make ``AutoConfig`` / ``AutoModelForCausalLM`` know model type "merino" in this process (idempotent)."""
    AutoConfig.register("merino", MerinoConfig, exist_ok=True)
    AutoModelForCausalLM.register(MerinoConfig, MerinoForCausalLM, exist_ok=True)


# save_pretrained writes auto_map into config.json and copies this file next to the weights
MerinoConfig.register_for_auto_class()
MerinoForCausalLM.register_for_auto_class("AutoModelForCausalLM")
