"""MeRino as Hugging Face transformers classes (paper Fig. 4).

Token embedding V x D and learned positions P x D; N blocks, block i of width E_i (E_i / head_dim
heads), FFN width F_i and depth L_i, entered through a projection from the previous width when it
differs; a projection back to D after the last block, a final LayerNorm and an LM head tied to the
token embedding.  Every layer is a GPT layer with a ReLU FFN (Eq. 5), pre-LayerNorm by default
(``norm="pre"``, like the GPT-2 / Pythia / OPT baselines) or post-LayerNorm as the paper's Eqs. 4 and 6
write it (``norm="post"``); with ``weight_sharing`` block i holds ONE layer and applies it L_i times.
Parameter counts equal ``merino.cost.CostModel.params`` exactly, under either norm (the same LayerNorms).

The model behaves like any transformers causal LM: a KV cache through the Cache API (every
*application* of a shared layer is its own cache layer, so block i fills L_i of them), ``logits_to_keep``,
hidden states and attention weights, ``return_dict=False``, gradient checkpointing, "sdpa" or "eager"
attention, packed sequences from restarting ``position_ids``, and ``generate`` with dynamic or static
caches, assisted and prompt-lookup decoding.

This file must stay self-contained (torch, transformers and the standard library only): save_pretrained
copies it into every checkpoint, which then loads with ``trust_remote_code=True`` where no other
``merino`` module is importable.  In-process, call :func:`register` to load checkpoints without it.
"""

from __future__ import annotations

import operator
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    GenerationMixin,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers import initialization as init
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, slice_logits_to_keep
from transformers.utils import can_return_tuple

NORMS = ("pre", "post")  # where a layer's LayerNorms sit (MerinoConfig.norm)


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
        norm (`str`, defaults to `"pre"`): where each layer's two LayerNorms sit.  `"pre"`: x + Attn(LN(x)), then
            x + FFN(LN(x)) (GPT-2; trains without a long warm-up).  `"post"`: LN(x + Attn(x)), then LN(x + FFN(x)),
            the paper's Eqs. 4 and 6.  Both keep the final LayerNorm `ln_f`.
        layer_norm_eps (`float`, defaults to 1e-5): epsilon of every LayerNorm.
        initializer_range (`float`, defaults to 0.02): standard deviation of the normal init of linear weights
            and embeddings.
        dropout (`float`, defaults to 0.0): dropout on embeddings, attention probabilities and residual branches.
        tie_word_embeddings (`bool`, defaults to `True`): the LM head reuses the token embedding matrix.
        use_cache (`bool`, defaults to `True`): outside training, forward returns a KV cache (`past_key_values`).
        bos_token_id (`int`, *optional*): beginning-of-sequence token.
        eos_token_id (`int`, *optional*): end-of-sequence token.
        pad_token_id (`int`, *optional*): padding token.

    Read-only standard attributes for tools that expect them: `hidden_size` (= `embed_proj_dim`, the width of
    the embeddings, of the first and last hidden states and of the LM head's input), `num_hidden_layers`
    (applied layers, sum of L_i: one cache layer and one hidden state each), `num_attention_heads` and
    `num_key_value_heads` (of the widest block, max E_i / head_dim; block i has E_i / head_dim) and
    `intermediate_size` (max F_i).
    """

    model_type = "merino"
    attribute_map: ClassVar[dict[str, str]] = {"hidden_size": "embed_proj_dim"}

    vocab_size: int = 50257
    embed_proj_dim: int = 768
    max_position_embeddings: int = 2048
    head_dim: int = 64
    block_embed_dims: list[int] | tuple[int, ...] = (512, 512, 640, 896)
    block_ffn_dims: list[int] | tuple[int, ...] = (512, 512, 640, 896)
    block_depths: list[int] | tuple[int, ...] = (2, 3, 2, 1)
    weight_sharing: bool = True
    norm: str = "pre"
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    dropout: float = 0.0
    tie_word_embeddings: bool = True
    use_cache: bool = True
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
                raise ValueError(f"{name} must be a non-empty list of positive integers (one per block), got {value!r}")
            setattr(self, name, [_positive_int(f"{name}[{i}]", v) for i, v in enumerate(value)])
            lengths[name] = len(value)
        if len(set(lengths.values())) > 1:
            raise ValueError(
                f"block_embed_dims, block_ffn_dims and block_depths must have one entry per block; "
                f"got lengths {lengths!r}: give all three lists the same length"
            )
        for i, e in enumerate(self.block_embed_dims):
            if e % self.head_dim:
                raise ValueError(
                    f"block_embed_dims[{i}]={e!r} is not a multiple of head_dim={self.head_dim!r}: "
                    f"use a multiple of head_dim (e.g. {max(1, e // self.head_dim) * self.head_dim!r}) "
                    f"or change head_dim"
                )
        if self.norm not in NORMS:
            raise ValueError(
                f"norm must be one of {NORMS!r} ('pre': x + f(LN(x)), GPT-2; 'post': LN(x + f(x)), "
                f"the paper's Eqs. 4 and 6), got {self.norm!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout!r}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}")
        if not self.initializer_range >= 0:
            raise ValueError(f"initializer_range must be non-negative, got {self.initializer_range!r}")
        super().__post_init__(**kwargs)

    @property
    def num_hidden_layers(self) -> int:
        return sum(self.block_depths)

    @property
    def num_attention_heads(self) -> int:
        return max(self.block_embed_dims) // self.head_dim

    @property
    def num_key_value_heads(self) -> int:
        return self.num_attention_heads

    @property
    def intermediate_size(self) -> int:
        return max(self.block_ffn_dims)

    @classmethod
    def from_architecture(cls, arch, **kwargs) -> MerinoConfig:
        """Config for ``arch``: any object with int lists ``widths``, ``ffn_dims`` and ``depths``
        (e.g. ``merino.space.Architecture``); ``kwargs`` set the remaining arguments."""
        return cls(
            block_embed_dims=list(arch.widths),
            block_ffn_dims=list(arch.ffn_dims),
            block_depths=list(arch.depths),
            **kwargs,
        )

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


def merino_eager_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(Q K^T * scaling + mask) V written out, so that the attention weights can be returned.

    ``attention_mask``: the additive float mask transformers builds for "eager" (0 where a query may
    attend, the dtype's minimum elsewhere), (B, 1, T, S) or None."""
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling  # (B, nh, T, S)
    if attention_mask is not None:
        scores = scores + attention_mask[..., : key.shape[-2]]
    weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)  # (B, nh, T, S)
    weights = F.dropout(weights, p=dropout, training=module.training)
    out = torch.matmul(weights, value).transpose(1, 2).contiguous()  # (B, T, nh, hs)
    return out, weights


class MerinoAttention(nn.Module):
    """Causal multi-head self-attention: fused Q, K, V projection and an output projection, all with bias.

    The kernel follows ``config._attn_implementation`` ("sdpa", the default, or "eager", the only one that
    returns attention weights).  A shared layer is applied several times per forward, so the cache slot is
    given per call (``layer_idx``), never stored on the module."""

    is_causal = True  # read by transformers' SDPA kernel

    def __init__(self, config: MerinoConfig, embed_dim: int):
        super().__init__()
        self.config = config
        self.n_head = embed_dim // config.head_dim
        self.head_dim = config.head_dim
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim)
        self.out = nn.Linear(embed_dim, embed_dim)
        self.attn_dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        attention_mask: torch.Tensor | None,
        past_key_values: Cache | None = None,
        layer_idx: int = 0,
        position_ids: torch.LongTensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, E = x.shape
        q, k, v = self.qkv(x).split(E, dim=2)  # (B, T, E) each
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        if past_key_values is not None:
            k, v = past_key_values.update(k, v, layer_idx)  # (B, nh, S, hs): cached past + these T tokens
        # a layer built outside a model (latency tables) has no implementation set: SDPA, a model's default
        implementation = self.config._attn_implementation or "sdpa"
        kernel = merino_eager_attention if implementation == "eager" else ALL_ATTENTION_FUNCTIONS[implementation]
        y, weights = kernel(
            self,
            q,
            k,
            v,
            attention_mask,
            dropout=self.attn_dropout if self.training else 0.0,
            scaling=self.head_dim**-0.5,
            position_ids=position_ids,
        )  # y: (B, T, nh, hs)
        y = y.reshape(B, T, E)  # (B, T, E)
        return self.resid_dropout(self.out(y)), weights


class MerinoLayer(GradientCheckpointingLayer):
    """GPT layer with a ReLU FFN, FFN(x) = W2 ReLU(W1 x) (paper Eq. 5), its LayerNorms placed by ``config.norm``:

    * "pre" (GPT-2): x + Attn(LN_1(x)), then x + FFN(LN_2(x));
    * "post" (the paper's Eqs. 4 and 6): x = LN_1(x + Attn(x)), then LN_2(x + FFN(x)).

    Returns the new hidden state (B, T, E) and the attention weights (B, nh, T, S) (None unless eager)."""

    def __init__(self, config: MerinoConfig, embed_dim: int, ffn_dim: int):
        super().__init__()
        self.post_norm = config.norm == "post"
        self.ln_1 = nn.LayerNorm(embed_dim, eps=config.layer_norm_eps)
        self.attn = MerinoAttention(config, embed_dim)
        self.ln_2 = nn.LayerNorm(embed_dim, eps=config.layer_norm_eps)
        self.fc_in = nn.Linear(embed_dim, ffn_dim)
        self.fc_out = nn.Linear(ffn_dim, embed_dim)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        past_key_values: Cache | None = None,
        layer_idx: int = 0,
        position_ids: torch.LongTensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.post_norm:  # paper Eqs. 4 and 6: x = LN(x + MHSA(x)); x = LN(x + FFN(x))
            a, weights = self.attn(
                x, attention_mask, past_key_values=past_key_values, layer_idx=layer_idx, position_ids=position_ids
            )
            x = self.ln_1(x + a)
            return self.ln_2(x + self.dropout(self.fc_out(F.relu(self.fc_in(x))))), weights
        # pre-LN: x = x + MHSA(LN(x)); x = x + FFN(LN(x))
        a, weights = self.attn(
            self.ln_1(x),
            attention_mask,
            past_key_values=past_key_values,
            layer_idx=layer_idx,
            position_ids=position_ids,
        )
        x = x + a
        return x + self.dropout(self.fc_out(F.relu(self.fc_in(self.ln_2(x))))), weights


class WidthProjection(nn.Linear):
    """Linear map between residual streams of different widths (into a block, and back to D).

    Initialised with std 1/sqrt(in_features), which preserves the residual stream's scale (the
    paper does not say how these are initialised).  The 0.02 of the other matrices would shrink
    the stream sqrt(in) * 0.02-fold at every width change, drowning the token signal under the
    layers' outputs: on the embedded study models that slowed training two- to three-fold."""


class MerinoBlock(nn.Module):
    """Block i (Fig. 4): a projection from the incoming width when it differs from E_i, then L_i layers.

    With weight sharing ``layers`` holds one MerinoLayer that runs L_i times; otherwise L_i distinct ones.
    MerinoModel runs ``proj`` and then :meth:`applied_layers` in order, so that every application gets
    its own cache layer, hidden state and attention weights."""

    def __init__(self, config: MerinoConfig, in_dim: int, embed_dim: int, ffn_dim: int, depth: int):
        super().__init__()
        self.proj = WidthProjection(in_dim, embed_dim) if in_dim != embed_dim else nn.Identity()
        self.depth = depth
        distinct = 1 if config.weight_sharing else depth
        self.layers = nn.ModuleList(MerinoLayer(config, embed_dim, ffn_dim) for _ in range(distinct))

    def applied_layers(self) -> list[MerinoLayer]:
        """The L_i layers in the order they run (the same module L_i times with weight sharing)."""
        return [self.layers[i % len(self.layers)] for i in range(self.depth)]


class MerinoPreTrainedModel(PreTrainedModel):
    config_class = MerinoConfig
    base_model_prefix = "model"
    _input_embed_layer = "wte"
    _no_split_modules: ClassVar[list[str]] = ["MerinoBlock"]  # a shared layer must stay on one device
    _skip_keys_device_placement: ClassVar[list[str]] = ["past_key_values"]
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _can_compile_fullgraph = True  # StaticCache + torch.compile

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
    """Embeddings, the N blocks, the projection back to D and the final LayerNorm.

    The final LayerNorm ``ln_f`` is kept under either ``config.norm`` (the cost model counts it for both): after
    post-LN layers it normalises the projection back to D, or renormalises the last layer's output where the
    last block is D wide."""

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
        self.gradient_checkpointing = False  # set by gradient_checkpointing_enable()
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,  # taken by @can_return_tuple before this body runs; named here so that
        # callers that bind keyword arguments to the signature (torch.export, transformers' exporters) may pass it
    ) -> BaseModelOutputWithPast:
        """``attention_mask`` (B, S): 1 for tokens, 0 for (left) padding, S = cached + new tokens; without
        ``position_ids`` positions then count tokens only.  ``position_ids`` (B, T) that restart inside a
        row mark packed documents, which then do not see each other (when no mask or cache is given).
        ``inputs_embeds`` (B, T, D) replaces the token lookup (positions are still added).  ``use_cache``
        (default: ``config.use_cache`` outside training) returns ``past_key_values``, a transformers Cache
        with one layer per applied layer (``config.num_hidden_layers``).  ``hidden_states``: the embedding
        output, then every applied layer's output, the last one replaced by the final (projected, normed)
        state, like GPT-2; ``attentions``: per applied layer (B, nh_i, T, S), eager only."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        config = self.config
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        if output_attentions and config._attn_implementation != "eager":
            raise ValueError(
                f"output_attentions=True needs attn_implementation='eager' (got "
                f"{config._attn_implementation!r}, which returns no weights): load with "
                f"attn_implementation='eager' or call model.set_attn_implementation('eager')"
            )
        if use_cache is None:
            use_cache = config.use_cache and not self.training
        if self.gradient_checkpointing and self.training:
            use_cache = False  # the recomputed forward would write every cache layer twice
        if inputs_embeds is None:
            inputs_embeds = self.wte(input_ids)  # (B, T, D)
        T = inputs_embeds.shape[1]
        if config.max_position_embeddings < T:
            raise ValueError(
                f"sequence length {T} exceeds max_position_embeddings="
                f"{config.max_position_embeddings}; truncate the input"
            )
        if position_ids is None:
            past = past_key_values.get_seq_length() if past_key_values is not None else 0
            if past + T > config.max_position_embeddings:
                raise ValueError(
                    f"{past} cached + {T} new tokens exceed max_position_embeddings="
                    f"{config.max_position_embeddings}; generate fewer tokens"
                )
            if attention_mask is not None and attention_mask.ndim == 2:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -T:]  # (B, T)
            else:
                position_ids = torch.arange(past, past + T, device=inputs_embeds.device)[None]  # (1, T)
        # (B, 1, T, S) in the kernel's format, or None for plain causal attention (SDPA's is_causal)
        mask = create_causal_mask(
            config=config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            past_key_values=past_key_values,
            position_ids=position_ids,
        )
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=config)
        x = self.drop(inputs_embeds + self.wpe(position_ids))  # (B, T, D)
        hidden_states, attentions = [x] if output_hidden_states else None, [] if output_attentions else None
        layer_idx = 0  # counts applications: a layer applied L_i times fills L_i cache layers
        for block in self.blocks:
            x = block.proj(x)  # (B, T, E_i)
            for layer in block.applied_layers():
                x, weights = layer(
                    x,
                    mask,
                    past_key_values=past_key_values if use_cache else None,
                    layer_idx=layer_idx,
                    position_ids=position_ids,
                )  # (B, T, E_i)
                layer_idx += 1
                if output_hidden_states:
                    hidden_states.append(x)
                if output_attentions:
                    attentions.append(weights)
        x = self.ln_f(self.proj_out(x))  # (B, T, D)
        if output_hidden_states:
            hidden_states[-1] = x
        return BaseModelOutputWithPast(
            last_hidden_state=x,
            past_key_values=past_key_values if use_cache else None,
            hidden_states=tuple(hidden_states) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )


class MerinoForCausalLM(MerinoPreTrainedModel, GenerationMixin):
    """MerinoModel plus the LM head (tied to the token embedding).

    Keyword arguments are explicit: a misspelt one raises TypeError naming it, as do unknown ``generate``
    kwargs.  ``num_items_in_batch`` (HF Trainer with gradient accumulation) makes the loss a sum over that
    many target tokens instead of a mean over this batch's."""

    _tied_weights_keys: ClassVar[dict[str, str]] = {"lm_head.weight": "model.wte.weight"}
    accepts_loss_kwargs = True  # Trainer passes num_items_in_batch (there is no **kwargs to tell it)

    def __init__(self, config: MerinoConfig):
        super().__init__(config)
        self.model = MerinoModel(config)
        self.lm_head = nn.Linear(config.embed_proj_dim, config.vocab_size, bias=False)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        num_items_in_batch: int | torch.Tensor | None = None,
        return_dict: bool | None = None,  # taken by @can_return_tuple (see MerinoModel.forward)
    ) -> CausalLMOutputWithPast:
        """``labels`` (B, T) are the inputs themselves (shifted here); -100 marks positions without a loss.
        ``logits_to_keep``: an int n computes logits for the last n positions only (0: all), a tensor
        selects positions.  ``return_dict=False`` returns the output's non-None fields as a tuple."""
        out = self.model(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        logits = self.lm_head(slice_logits_to_keep(out.last_hidden_state, logits_to_keep))  # (B, T', V)
        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits, labels, vocab_size=self.config.vocab_size, num_items_in_batch=num_items_in_batch
            )
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            past_key_values=out.past_key_values,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )


def config_for(arch, convention: dict, tokenizer) -> MerinoConfig:
    """Config of ``arch`` under a workflow ``model`` section (embed_proj_dim, max_positions, head_dim,
    weight_sharing, norm: "pre" where an older section lacks it) with the tokenizer's vocabulary size and
    special tokens."""
    return MerinoConfig.from_architecture(
        arch,
        vocab_size=len(tokenizer),
        embed_proj_dim=convention["embed_proj_dim"],
        max_position_embeddings=convention["max_positions"],
        head_dim=convention["head_dim"],
        weight_sharing=convention["weight_sharing"],
        norm=convention.get("norm", "pre"),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def register() -> None:
    """Make ``AutoConfig`` / ``AutoModelForCausalLM`` know model type "merino" in this process (idempotent)."""
    AutoConfig.register("merino", MerinoConfig, exist_ok=True)
    AutoModelForCausalLM.register(MerinoConfig, MerinoForCausalLM, exist_ok=True)


# save_pretrained writes auto_map into config.json and copies this file next to the weights
MerinoConfig.register_for_auto_class()
MerinoForCausalLM.register_for_auto_class("AutoModelForCausalLM")
