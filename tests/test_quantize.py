"""GPTQ / RTN weight-only quantization: the grid, INT4 packing, GPTQ against the paper's column-by-column
equations and against RTN, shared-weight layers quantized once from all their applications, GPT-2's
Conv1D, save -> load, and perplexity of a briefly trained tiny MeRino."""

import copy

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from merino import quantize as Q
from merino.corpus import load_corpus
from merino.model import MerinoConfig, MerinoForCausalLM
from merino.quantize import (
    QuantSpec,
    conv1d_to_linear,
    draw_calibration,
    gptq_quantize,
    load_quantized,
    pack_codes,
    quantize_model,
    read_quantized,
    retokenize,
    rtn_quantize,
    save_quantized,
    unpack_codes,
)
from merino.token_cache import build_token_cache
from merino.tokenizer import train_tokenizer
from merino.train import model_loss, unalias


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def correlated_layer(rows=48, cols=100, tokens=2048, seed=0):
    """A random weight and inputs X (tokens, cols) dominated by 12 latent directions plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(rows, cols, generator=g, dtype=torch.float64)
    X = torch.randn(tokens, 12, generator=g, dtype=torch.float64) @ torch.randn(
        12, cols, generator=g, dtype=torch.float64
    )
    X += 0.1 * torch.randn(tokens, cols, generator=g, dtype=torch.float64)
    return W, X, 2 * X.T @ X / tokens


def minmax_grid(w, maxq):
    lo, hi = w.min(1).values.clamp(max=0), w.max(1).values.clamp(min=0)
    scale = (hi - lo) / maxq
    return scale, torch.round(-lo / scale)


def gptq_by_obs_updates(W, H, bits, group_size, percdamp=0.01):
    """The paper's Eqs. (2)-(3), one column at a time: quantize w_j, move the later columns by
    -(w_j - q_j) / [H⁻¹]_jj · [H⁻¹]_{j,:} and eliminate j from H⁻¹; no Cholesky, no blocks."""
    W, maxq = W.clone(), 2**bits - 1
    Hinv = torch.linalg.inv(H + percdamp * H.diag().mean() * torch.eye(len(H), dtype=H.dtype))
    out = torch.zeros_like(W)
    for j in range(W.shape[1]):
        if j % group_size == 0:
            scale, zero = minmax_grid(W[:, j : j + group_size], maxq)
        out[:, j] = scale * (torch.clamp(torch.round(W[:, j] / scale) + zero, 0, maxq) - zero)
        err = (W[:, j] - out[:, j]) / Hinv[j, j]
        W[:, j:] -= err[:, None] * Hinv[j, j:][None, :]
        Hinv[j:, j:] -= Hinv[j:, j, None] @ Hinv[None, j, j:] / Hinv[j, j]
    return out


# ---- the grid and the codes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("group_size", [32, -1])
def test_rtn_error_is_at_most_half_a_step_of_its_group(bits, group_size):
    W = torch.randn(20, 100, generator=torch.Generator().manual_seed(1))
    W[0] = 0  # an all-zero row
    W[1] = W[1].abs() + 0.5  # all positive: the range is stretched to contain 0
    W[2, 7] = 40.0  # an outlier
    q = rtn_quantize(W, QuantSpec(bits=bits, group_size=group_size, method="rtn"))
    gs = 100 if group_size == -1 else group_size
    assert q.codes.dtype == torch.uint8 and int(q.codes.max()) <= 2**bits - 1
    assert q.scales.shape == q.zeros.shape == (20, -(-100 // gs))
    step = q.scales.repeat_interleave(gs, dim=1)[:, :100]
    err = (W - q.dequantize()).abs()
    assert (err <= step / 2 * (1 + 1e-5)).all()
    assert (q.dequantize()[0] == 0).all()  # zero is on the grid
    assert err[1:].max() > step[1:].max() / 10  # not trivially exact


@pytest.mark.parametrize("bits", [8, 4, 2, 3])
def test_code_packing_round_trips_exactly(bits):
    codes = torch.randint(0, 2**bits, (7, 101), generator=torch.Generator().manual_seed(bits), dtype=torch.uint8)
    packed = pack_codes(codes, bits)
    assert packed.dtype == torch.uint8 and packed.shape == (7, {8: 101, 4: 51, 2: 26, 3: 101}[bits])
    assert torch.equal(unpack_codes(packed, bits, 101), codes)
    if bits == 4:  # two codes per byte, the even column in the low nibble
        assert int(packed[0, 0]) == int(codes[0, 0]) | int(codes[0, 1]) << 4


# ---- the algorithm ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("block_size", [128, 5])
def test_lazy_batch_gptq_equals_the_column_by_column_equations(block_size):
    W, _, H = correlated_layer()
    spec = QuantSpec(bits=4, group_size=8, block_size=block_size)  # block 5: groups straddle blocks
    ours = gptq_quantize(W, H, spec, dtype=torch.float64).dequantize().double()
    reference = gptq_by_obs_updates(W, H, 4, 8)
    assert torch.allclose(ours, reference, rtol=0, atol=1e-5)  # scales are stored as float32; a step is ~0.5


@pytest.mark.parametrize(
    "spec",
    [
        QuantSpec(bits=4, group_size=-1),
        QuantSpec(bits=4, group_size=32),
        QuantSpec(bits=3, group_size=32),
        QuantSpec(bits=8, group_size=-1),
        QuantSpec(bits=4, group_size=32, static_groups=True),
        QuantSpec(bits=4, group_size=32, act_order=True),
    ],
    ids=lambda s: (
        f"{s.bits}b-g{s.group_size}{'-static' if s.static_groups else ''}{'-actorder' if s.act_order else ''}"
    ),
)
def test_gptq_output_error_is_below_rtn_on_the_same_grid(spec):
    W, X, H = correlated_layer()
    gptq = gptq_quantize(W.float(), H.float(), spec).dequantize().double()
    rtn = rtn_quantize(W, QuantSpec(bits=spec.bits, group_size=spec.group_size, method="rtn")).dequantize().double()
    error = {name: float(((X @ (W - Wq).T) ** 2).sum()) for name, Wq in (("gptq", gptq), ("rtn", rtn))}
    assert error["gptq"] < 0.5 * error["rtn"], error


def test_dead_columns_are_zeroed_and_bad_inputs_refused():
    W, X, _ = correlated_layer()
    X[:, 3] = 0  # input 3 is never active
    q = gptq_quantize(W, 2 * X.T @ X, QuantSpec(bits=4, group_size=-1))
    assert (q.dequantize()[:, 3] == 0).all() and q.stats["dead_columns"] == 1
    with pytest.raises(ValueError, match="does not fit"):
        gptq_quantize(W, torch.eye(5), QuantSpec())
    for bad in ({"bits": 1}, {"bits": 16}, {"group_size": 0}, {"method": "awq"}, {"percdamp": -1}):
        with pytest.raises(ValueError):
            QuantSpec(**bad)


# ---- models --------------------------------------------------------------------------------------------------
def markov_tokens(n, length, vocab, generator):
    """Sequences of a fixed random permutation chain: next = perm[current] with probability 0.95."""
    perm = torch.randperm(vocab, generator=torch.Generator().manual_seed(0))
    x = torch.empty(n, length, dtype=torch.long)
    x[:, 0] = torch.randint(0, vocab, (n,), generator=generator)
    for t in range(1, length):
        keep = torch.rand(n, generator=generator) < 0.95
        x[:, t] = torch.where(keep, perm[x[:, t - 1]], torch.randint(0, vocab, (n,), generator=generator))
    return x


def tiny_merino(weight_sharing=True, vocab=128):
    torch.manual_seed(0)
    return MerinoForCausalLM(
        MerinoConfig(
            vocab_size=vocab,
            embed_proj_dim=64,
            max_position_embeddings=64,
            head_dim=32,
            block_embed_dims=[64, 96],
            block_ffn_dims=[128, 192],
            block_depths=[3, 1],
            weight_sharing=weight_sharing,
        )
    ).eval()


@pytest.fixture(scope="module")
def trained():
    """A tiny MeRino (block 0: one layer applied 3 times) trained 150 steps on a learnable chain."""
    g = torch.Generator().manual_seed(1)
    data, validation, calibration = (
        markov_tokens(150 * 16, 33, 128, g),
        markov_tokens(256, 33, 128, g),
        markov_tokens(16, 32, 128, g),
    )
    model = tiny_merino().train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(150):
        model_loss(model, data[step * 16 : (step + 1) * 16]).backward()
        opt.step()
        opt.zero_grad()
    return model.eval(), validation, calibration


def perplexity(model, seq):
    with torch.no_grad():
        return float(torch.exp(model_loss(model, seq)))


@pytest.mark.slow
def test_int8_keeps_perplexity_and_int4_costs_more(trained):
    model, validation, calibration = trained
    fp32 = perplexity(model, validation)
    assert fp32 < 2.5  # learned the chain (uniform would be 128)
    ppl, logit_error = {}, {}
    with torch.no_grad():
        reference = model(validation[:, :-1]).logits
    for bits in (8, 4):
        quantized = copy.deepcopy(model)
        quantize_model(quantized, QuantSpec(bits=bits, group_size=32), calibration)
        ppl[bits] = perplexity(quantized, validation)
        with torch.no_grad():
            logit_error[bits] = float((quantized(validation[:, :-1]).logits - reference).square().mean())
    assert abs(ppl[8] / fp32 - 1) < 1e-3, (fp32, ppl)
    assert ppl[4] > ppl[8] and logit_error[4] > 20 * logit_error[8], (fp32, ppl, logit_error)


@pytest.mark.parametrize("sharing", [True, False])
def test_shared_layer_gets_every_application_and_is_quantized_once(monkeypatch, sharing):
    model = tiny_merino(weight_sharing=sharing)
    tokens = markov_tokens(6, 16, 128, torch.Generator().manual_seed(2))
    first = "model.blocks.0.layers.0.attn.qkv"
    inputs = []  # qkv's inputs in the unquantized model: every application of every forward
    hook = model.get_submodule(first).register_forward_pre_hook(lambda m, args: inputs.append(args[0].flatten(0, 1)))
    with torch.no_grad():
        model(tokens)
    hook.remove()
    X = torch.cat(inputs).double()
    calls = []
    real = Q.gptq_quantize
    monkeypatch.setattr(Q, "gptq_quantize", lambda W, H, spec: calls.append((W, H)) or real(W, H, spec))

    result = quantize_model(model, QuantSpec(bits=4, group_size=32), tokens, batch_size=4)  # 2 batches
    block0 = sorted(n for n in result.weights if n.startswith("model.blocks.0."))
    if sharing:
        assert len(model.model.blocks[0].layers) == 1 and len(inputs) == 3
        assert block0 == [f"model.blocks.0.layers.0.{m}" for m in ("attn.out", "attn.qkv", "fc_in", "fc_out")]
        for name in block0:
            assert result.weights[name].stats["applications_per_forward"] == 3
            assert result.weights[name].stats["calls"] == 3 * 2 and result.weights[name].stats["tokens"] == 3 * 6 * 16
    else:
        assert len(block0) == 12 and all(result.weights[n].stats["tokens"] == 6 * 16 for n in block0)
    assert len(calls) == len(result.weights) == 4 * (len(model.model.blocks[0].layers) + 1) + 2  # + proj, proj_out
    assert torch.allclose(calls[0][1].double(), 2 * X.T @ X / len(X), rtol=1e-5, atol=1e-6)  # qkv came first
    for name, q in result.weights.items():  # the model now holds exactly the dequantized codes
        assert torch.equal(model.get_submodule(name).weight, q.dequantize())


def test_save_and_load_give_identical_weights_and_logits(tmp_path, trained):
    model, validation, calibration = trained
    model = copy.deepcopy(model)
    result = quantize_model(model, QuantSpec(bits=4, group_size=32), calibration)
    sizes = save_quantized(model, result, tmp_path)
    loaded = load_quantized(tmp_path)
    assert type(loaded) is MerinoForCausalLM and loaded.lm_head.weight is loaded.model.wte.weight
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    with torch.no_grad():
        assert torch.equal(loaded(validation[:, :-1]).logits, model(validation[:, :-1]).logits)
    codes, fp_tensors = read_quantized(tmp_path)
    assert codes.spec == result.spec and set(codes.weights) == set(result.weights)
    assert all(torch.equal(codes.weights[n].codes, q.codes) for n, q in result.weights.items())
    assert "model.wte.weight" in fp_tensors and not any(k.endswith("qkv.weight") for k in fp_tensors)
    fp32_bytes = sum(p.numel() * 4 for p in model.parameters())
    assert sizes["bytes_on_disk"] == (tmp_path / "model.safetensors").stat().st_size < 0.75 * fp32_bytes
    mode = (tmp_path / "config.json").stat().st_mode & 0o777
    assert (tmp_path / "model.safetensors").stat().st_mode & 0o777 == mode  # readable like the rest
    assert 4 < sizes["bits_per_quantized_weight"] < 6
    written = (tmp_path / "quantization.json").read_text()
    assert '"bits": 4' in written and '"group_size": 32' in written and '"sizes"' in written


def tiny_gpt2():
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=128, n_positions=64, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config).eval()


def test_gpt2_conv1d_matches_linear_and_round_trips(tmp_path):
    model = tiny_gpt2()
    tokens = markov_tokens(8, 32, 128, torch.Generator().manual_seed(3))
    linear = conv1d_to_linear(model)
    spec = QuantSpec(bits=4, group_size=32)
    ours, theirs = quantize_model(model, spec, tokens), quantize_model(linear, spec, tokens)
    assert (
        list(ours.weights)
        == list(theirs.weights)
        == [
            f"transformer.h.{i}.{m}" for i in range(2) for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
        ]
    )
    assert set(ours.layouts.values()) == {"conv1d"} and set(theirs.layouts.values()) == {"linear"}
    for name in ours.weights:
        same = (ours.weights[name].codes == theirs.weights[name].codes).float().mean()
        assert same > 0.99, (name, float(same))
        assert torch.equal(model.get_submodule(name).weight, ours.weights[name].dequantize().T)
    save_quantized(model, ours, tmp_path)
    loaded = load_quantized(tmp_path)
    assert type(loaded) is GPT2LMHeadModel
    with torch.no_grad():
        assert torch.equal(loaded(tokens).logits, model(tokens).logits)


def test_calibration_draw_is_seeded(tmp_path):
    corpus = load_corpus({"source": "embedded", "max_chars": 30_000})
    build_token_cache(corpus, train_tokenizer(corpus, vocab_size=300), tmp_path)
    a, b = draw_calibration(tmp_path, 8, 16, seed=0), draw_calibration(tmp_path, 8, 16, seed=0)
    assert a.tokens.shape == (8, 16) and torch.equal(a.tokens, b.tokens) and a.description == b.description
    assert len(set(a.description["indices"])) == 8 and a.description["split"] == "train"
    assert not torch.equal(draw_calibration(tmp_path, 8, 16, seed=1).tokens, a.tokens)
    with pytest.raises(ValueError, match="n_samples"):
        draw_calibration(tmp_path, 10**6, 16, seed=0)


def test_retokenized_calibration_is_the_same_text_in_the_other_tokenizer(tmp_path):
    """A paper baseline is calibrated on the text of our calibration sequences, in its own tokenizer."""
    corpus = load_corpus({"source": "embedded", "max_chars": 30_000})
    ours, theirs = train_tokenizer(corpus, vocab_size=300), train_tokenizer(corpus, vocab_size=600)
    build_token_cache(corpus, ours, tmp_path)
    calibration = draw_calibration(tmp_path, 8, 32, seed=0)
    moved = retokenize(calibration, ours, theirs, "their-model")
    n = moved.tokens.shape[0]
    assert moved.tokens.shape[1] == 32 and 1 <= n <= 8 and moved.description["n_samples"] == n
    assert moved.description["retokenized_for"] == "their-model" and moved.description["indices"]
    text = theirs.eos_token.join(ours.batch_decode(calibration.tokens.tolist()))
    assert theirs.decode(moved.tokens.flatten().tolist()) == theirs.decode(
        theirs(text, add_special_tokens=False)["input_ids"][: n * 32]
    )
    assert moved.description["target_tokens"] < moved.description["source_tokens"]  # the larger vocabulary is terser
    with pytest.raises(ValueError, match="raise quantization.calibration.samples"):
        retokenize(draw_calibration(tmp_path, 1, 32, seed=0), ours, train_tokenizer(corpus, vocab_size=4000), "x")


@pytest.mark.parametrize("family", ["opt", "gpt_neox"])
def test_paper_baseline_families_quantize_and_reload(tmp_path, family):
    """OPT (Linear, learned positions) and Pythia's GPT-NeoX (fused QKV, rotary): every projection quantized,
    the checkpoint reloads through transformers' own classes with identical logits."""
    from transformers import AutoConfig, AutoModelForCausalLM

    kwargs = {
        "opt": dict(
            hidden_size=64, ffn_dim=128, word_embed_proj_dim=64, num_attention_heads=2, max_position_embeddings=64
        ),
        "gpt_neox": dict(hidden_size=64, intermediate_size=128, num_attention_heads=2, max_position_embeddings=64),
    }[family]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(
        AutoConfig.for_model(family, vocab_size=128, num_hidden_layers=2, **kwargs)
    ).eval()
    tokens = markov_tokens(8, 32, 128, torch.Generator().manual_seed(3))
    quantized = quantize_model(model, QuantSpec(bits=4, group_size=32), tokens)
    per_layer = {"opt": 6, "gpt_neox": 4}[family]  # q, k, v (GPT-NeoX: fused), out, up, down
    assert len(quantized.weights) == 2 * per_layer and not quantized.unquantized
    sizes = save_quantized(model, quantized, tmp_path)
    assert sizes["fp32_model_bytes"] == 4 * sum(p.numel() for p in unalias(model.state_dict()).values())
    loaded = load_quantized(tmp_path)
    assert type(loaded) is type(model)
    with torch.no_grad():
        assert torch.equal(loaded(tokens).logits, model(tokens).logits)
