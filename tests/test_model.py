import inspect
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from merino.cost import CostModel
from merino.model import NORMS, MerinoConfig, MerinoForCausalLM, MerinoLayer, register
from merino.space import Architecture, Block, SearchSpace

V, P = 97, 64


def tiny_config(E=(64, 128), F=(32, 48), L=(2, 3), D=64, **kwargs):
    args = {
        "vocab_size": V,
        "embed_proj_dim": D,
        "max_position_embeddings": P,
        "block_embed_dims": list(E),
        "block_ffn_dims": list(F),
        "block_depths": list(L),
    }
    return MerinoConfig(**{**args, **kwargs})


def tiny_model(seed=0, **kwargs):
    torch.manual_seed(seed)
    return MerinoForCausalLM(tiny_config(**kwargs)).eval()


def n_params(model):
    return sum(p.numel() for p in model.parameters())


# ---- 1. parameters equal the cost model -------------------------------------------------------------------
@pytest.mark.parametrize("shared", [True, False])
def test_parameter_count_equals_cost_model(shared):
    rng = np.random.default_rng(7)
    for i in range(20):
        space = SearchSpace(
            n_blocks=int(rng.integers(1, 4)),
            e_min=64,
            e_max=128,
            e_step=64,
            f_min=16,
            f_max=64,
            f_step=16,
            depths=(1, 2, 3),
            non_decreasing_width=False,
        )
        arch = space.to_architecture(space.sample(rng, 1)[0])
        d = int(rng.choice([64, 128]))
        config = MerinoConfig.from_architecture(
            arch, vocab_size=V, embed_proj_dim=d, max_position_embeddings=P, weight_sharing=shared
        )
        assert config.architecture_dict() == {"E": arch.widths, "F": arch.ffn_dims, "L": arch.depths}
        cost = CostModel(vocab_size=V, embed_proj_dim=d, max_positions=P, head_dim=64, shared=shared)
        assert n_params(MerinoForCausalLM(config)) == cost.params(arch), (i, str(arch), d)


@pytest.mark.parametrize("norm", NORMS)
def test_paper_default_config_matches_cost_model(norm):
    config = MerinoConfig(norm=norm)  # post-LN moves the LayerNorms, it adds none
    with torch.device("meta"):
        model = MerinoForCausalLM(config)
    arch = Architecture.from_dict(config.architecture_dict())
    assert n_params(model) == CostModel().params(arch)


# ---- 2. weight sharing -----------------------------------------------------------------------------------
def test_shared_block_has_one_set_of_tensors():
    shared = tiny_model(E=(64,), F=(32,), L=(3,), D=128)
    block = shared.model.blocks[0]
    layer_tensors = {p.data_ptr() for p in block.layers[0].parameters()}
    assert {p.data_ptr() for p in block.parameters()} - {p.data_ptr() for p in block.proj.parameters()} == layer_tensors
    assert n_params(block) - n_params(block.proj) == CostModel.layer_params(64, 32)

    unshared = tiny_model(E=(64,), F=(32,), L=(3,), D=128, weight_sharing=False)
    layers = unshared.model.blocks[0].layers
    assert len(layers) == 3
    assert len({p.data_ptr() for layer in layers for p in layer.parameters()}) == 3 * len(layer_tensors)


def test_shared_gradient_is_the_sum_over_applications():
    shared = tiny_model(E=(64,), F=(32,), L=(3,), D=128)
    unshared = tiny_model(E=(64,), F=(32,), L=(3,), D=128, weight_sharing=False)
    state = shared.state_dict()
    copies = {}
    for key, value in state.items():
        if ".layers.0." in key:
            for i in range(3):
                copies[key.replace(".layers.0.", f".layers.{i}.")] = value
        else:
            copies[key] = value
    unshared.load_state_dict(copies)
    x = torch.randint(0, V, (2, 12))
    out_shared, out_unshared = shared(x, labels=x), unshared(x, labels=x)
    torch.testing.assert_close(out_shared.logits, out_unshared.logits)
    out_shared.loss.backward()
    out_unshared.loss.backward()
    layers = unshared.model.blocks[0].layers
    shared_layer = shared.model.blocks[0].layers[0]
    for name, p in shared_layer.named_parameters():
        summed = sum(layer.get_parameter(name).grad for layer in layers)
        torch.testing.assert_close(p.grad, summed, rtol=1e-4, atol=1e-6)


# ---- 3. save / load ----------------------------------------------------------------------------------------
LOAD_SCRIPT = textwrap.dedent("""
    import json, sys, torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
    x = torch.tensor(json.loads(sys.argv[2]))
    with torch.no_grad():
        logits = model(x).logits
    print(json.dumps({"logits": logits.tolist(), "class": type(model).__module__,
                      "tied": model.lm_head.weight is model.model.wte.weight,
                      "merino_imported": any(m == "merino" or m.startswith("merino.") for m in sys.modules)}))
""")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = tiny_model(seed=3, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    path = tmp_path_factory.mktemp("ckpt")
    model.save_pretrained(path)
    return model, path


def test_checkpoint_files(saved):
    model, path = saved
    assert {"model.safetensors", "config.json", "model.py"} <= {p.name for p in path.iterdir()}
    config = json.loads((path / "config.json").read_text())
    assert config["auto_map"] == {"AutoConfig": "model.MerinoConfig", "AutoModelForCausalLM": "model.MerinoForCausalLM"}
    assert config["block_embed_dims"] == [64, 128] and config["model_type"] == "merino"
    from safetensors import safe_open

    with safe_open(path / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert "model.wte.weight" in keys and "lm_head.weight" not in keys
    assert len(keys) == len(model.state_dict()) - 1


@pytest.mark.slow
def test_load_with_remote_code_in_fresh_process(saved, tmp_path):
    model, path = saved
    x = [[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16]]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "TRANSFORMERS_VERBOSITY": "error",
    }
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(path), json.dumps(x)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["class"].startswith("transformers_modules")
    assert result["tied"] and not result["merino_imported"]
    with torch.no_grad():
        expected = model(torch.tensor(x)).logits
    assert (torch.tensor(result["logits"]) - expected).abs().max() < 1e-5


def test_load_in_process_after_register(saved):
    model, path = saved
    register()
    register()  # idempotent
    assert type(AutoConfig.from_pretrained(path)) is MerinoConfig
    loaded = AutoModelForCausalLM.from_pretrained(path).eval()
    assert type(loaded) is MerinoForCausalLM
    assert loaded.lm_head.weight is loaded.model.wte.weight
    assert loaded.config.architecture_dict() == model.config.architecture_dict()
    x = torch.randint(0, V, (2, 9))
    with torch.no_grad():
        assert (loaded(x).logits - model(x).logits).abs().max() < 1e-5


# ---- 4. generation -------------------------------------------------------------------------------------------
def greedy(model, ids, steps):
    ids = torch.tensor([ids])
    for _ in range(steps):
        with torch.no_grad():
            nxt = model(ids).logits[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], dim=1)
    return ids[0].tolist()


@pytest.fixture(scope="module")
def generator():
    return tiny_model(seed=5, initializer_range=0.1, pad_token_id=0)


def test_greedy_generate_equals_manual_loop(generator):
    prompt = [5, 17, 33, 8, 61]
    out = generator.generate(torch.tensor([prompt]), max_new_tokens=8, do_sample=False)
    assert out[0].tolist() == greedy(generator, prompt, 8)


def test_left_padded_batch_matches_single_prompts(generator):
    long, short = [5, 17, 33, 8, 61], [40, 2, 77]
    ids = torch.tensor([long, [0, 0, *short]])
    mask = torch.tensor([[1] * 5, [0, 0, 1, 1, 1]])
    with torch.no_grad():
        padded = generator(ids, attention_mask=mask).logits
        alone = generator(torch.tensor([short])).logits
    assert torch.isfinite(padded).all()
    assert (padded[1, 2:] - alone[0]).abs().max() < 1e-5

    out = generator.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False)
    assert out[0].tolist() == greedy(generator, long, 8)
    assert out[1, 2:].tolist() == greedy(generator, short, 8)


def test_explicit_position_ids_override_the_default(generator):
    x = torch.randint(1, V, (1, 6))
    with torch.no_grad():
        default = generator(x).logits
        same = generator(x, position_ids=torch.arange(6)[None]).logits
        shifted = generator(x, position_ids=torch.arange(6)[None] + 3).logits
    torch.testing.assert_close(default, same)
    assert not torch.allclose(default, shifted)


def test_inputs_embeds_replace_the_token_lookup(generator):
    x = torch.randint(1, V, (2, 5))
    with torch.no_grad():
        by_ids = generator(x).logits
        by_embeds = generator(inputs_embeds=generator.model.wte(x)).logits
    torch.testing.assert_close(by_ids, by_embeds)
    for bad in ({}, {"input_ids": x, "inputs_embeds": generator.model.wte(x)}):
        with pytest.raises(ValueError, match="exactly one of input_ids and inputs_embeds"):
            generator(**bad)


# ---- 5. loss and training ---------------------------------------------------------------------------------
def test_loss_is_shifted_cross_entropy():
    model = tiny_model()
    x = torch.randint(0, V, (3, 10))
    labels = x.clone()
    labels[0, 4:] = -100
    out = model(x, labels=labels)
    expected = torch.nn.functional.cross_entropy(
        out.logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100
    )
    torch.testing.assert_close(out.loss, expected)


def test_tiny_model_overfits_one_batch():
    model = tiny_model(seed=1, E=(128, 64), F=(64, 32), L=(2, 2), D=64).train()
    x = torch.randint(0, V, (2, 16), generator=torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step in range(50):
        loss = model(x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        if step == 0:
            no_grad = [n for n, p in model.named_parameters() if n != "model.wpe.weight" and not p.grad.abs().sum()]
            assert not no_grad
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]


def test_init():
    model = tiny_model(initializer_range=0.05)
    layer = model.model.blocks[1].layers[0]
    assert torch.equal(layer.ln_1.weight, torch.ones(128)) and not layer.ln_1.bias.any()
    assert not layer.attn.qkv.bias.any() and not model.model.blocks[1].proj.bias.any()
    assert layer.fc_in.weight.std().item() == pytest.approx(0.05, rel=0.15)
    assert model.model.wte.weight.std().item() == pytest.approx(0.05, rel=0.15)
    proj = model.model.blocks[1].proj  # width projections preserve the residual stream's scale
    assert proj.weight.std().item() == pytest.approx(proj.in_features**-0.5, rel=0.15)


# ---- 6. config validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"E": (64, 100)}, "block_embed_dims[1]"),
        ({"F": (32,)}, "block_ffn_dims"),
        ({"L": (2, 0)}, "block_depths[1]"),
        ({"L": (2, 1.5)}, "block_depths[1]"),
        ({"E": ()}, "block_embed_dims"),
        ({"head_dim": 0}, "head_dim"),
        ({"vocab_size": -3}, "vocab_size"),
        ({"dropout": 1.0}, "dropout"),
        ({"norm": "sandwich"}, "norm must be one of .*'sandwich'"),
    ],
)
def test_config_validation(kwargs, name):
    with pytest.raises(ValueError, match=name.replace("[", r"\[")):
        tiny_config(**kwargs)


def test_config_from_architecture_round_trip(tmp_path):
    arch = Architecture((Block(64, 96, 1), Block(128, 160, 4)))
    config = MerinoConfig.from_architecture(arch, vocab_size=V, embed_proj_dim=64, weight_sharing=False, norm="post")
    config.save_pretrained(tmp_path)
    again = MerinoConfig.from_pretrained(tmp_path)
    assert again.architecture_dict() == {"E": [64, 128], "F": [96, 160], "L": [1, 4]}
    assert again.weight_sharing is False and again.vocab_size == V and again.norm == "post"
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["norm"]  # a checkpoint saved before `norm` existed: its layers were pre-LN
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert MerinoConfig.from_pretrained(tmp_path).norm == "pre"


# ---- 6b. pre- and post-LayerNorm layers (paper Eqs. 4 and 6) against a forward written out -------------------
def _layer_norm(x, ln):
    return torch.nn.functional.layer_norm(x, x.shape[-1:], ln.weight, ln.bias, ln.eps)


def _linear(x, lin):
    return x @ lin.weight.T + lin.bias


def _ffn(layer, x):
    return _linear(torch.relu(_linear(x, layer.fc_in)), layer.fc_out)


def _attention(layer, x, head_dim):
    """Causal multi-head attention, softmax(Q K^T / sqrt(hs)) V, from the layer's fused weights."""
    B, T, E = x.shape
    q, k, v = (
        t.view(B, T, E // head_dim, head_dim).transpose(1, 2)  # (B, nh, T, hs) each
        for t in _linear(x, layer.attn.qkv).split(E, dim=-1)
    )
    scores = (q @ k.transpose(-1, -2)) * head_dim**-0.5  # (B, nh, T, T)
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, E)
    return _linear(y, layer.attn.out)


def reference_logits(model, ids):
    """MerinoForCausalLM's forward in plain tensor algebra; layers by config.norm:
    pre: x = x + MHSA(LN(x)); x = x + FFN(LN(x)).   post (Eqs. 4, 6): x = LN(x + MHSA(x)); x = LN(x + FFN(x))."""
    m, hd = model.model, model.config.head_dim
    x = m.wte.weight[ids] + m.wpe.weight[: ids.shape[1]]
    for block in m.blocks:
        x = x if isinstance(block.proj, torch.nn.Identity) else _linear(x, block.proj)
        for layer in block.applied_layers():
            if model.config.norm == "post":
                x = _layer_norm(x + _attention(layer, x, hd), layer.ln_1)
                x = _layer_norm(x + _ffn(layer, x), layer.ln_2)
            else:
                x = x + _attention(layer, _layer_norm(x, layer.ln_1), hd)
                x = x + _ffn(layer, _layer_norm(x, layer.ln_2))
    x = x if isinstance(m.proj_out, torch.nn.Identity) else _linear(x, m.proj_out)
    return _layer_norm(x, m.ln_f) @ m.wte.weight.T


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("shared", [True, False], ids=["shared", "unshared"])
def test_layers_match_a_forward_written_out(norm, shared):
    model = tiny_model(seed=2, initializer_range=0.3, weight_sharing=shared, norm=norm).double()
    x = torch.randint(0, V, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, reference_logits(model, x), rtol=1e-9, atol=1e-9)


def test_post_ln_moves_the_layer_norms_of_the_same_weights():
    pre = tiny_model(seed=2, initializer_range=0.3)
    post = MerinoForCausalLM(tiny_config(initializer_range=0.3, norm="post")).eval()
    post.load_state_dict(pre.state_dict())  # the same tensors under the same names
    x = torch.randint(0, V, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert not torch.allclose(pre(x).logits, post(x).logits, atol=1e-3)


# ---- 7. KV cache (one cache layer per applied layer) ------------------------------------------------------
SHARING = pytest.mark.parametrize("shared", [True, False], ids=["shared", "unshared"])
NORM = pytest.mark.parametrize("norm", NORMS)


def lively_model(shared, norm="pre", **kwargs):
    """Tiny model with large random weights: greedy decoding wanders instead of repeating one token.  Post-LN
    layers with weights of std 1 decode one repeated token (measured); with std 0.05 they wander."""
    init = 1.0 if norm == "pre" else 0.05
    return tiny_model(seed=5, initializer_range=init, weight_sharing=shared, pad_token_id=0, norm=norm, **kwargs)


PROMPT = [5, 17, 33, 8, 61]


@NORM
@SHARING
def test_cached_greedy_generation_equals_uncached(shared, norm):
    model = lively_model(shared, norm=norm)
    ids = torch.tensor([PROMPT])
    cached = model.generate(ids, max_new_tokens=12, do_sample=False)
    assert cached[0].tolist() == greedy(model, PROMPT, 12)
    assert len(set(cached[0, 5:].tolist())) > 3  # a test that decodes one repeated token would prove little
    assert torch.equal(model.generate(ids, max_new_tokens=12, do_sample=False, use_cache=False), cached)
    assert torch.equal(model.generate(ids, max_new_tokens=12, do_sample=False, cache_implementation="static"), cached)


@pytest.mark.slow
def test_compiled_generation_with_a_static_cache():
    """torch.compile(fullgraph=True) traces the whole forward with a StaticCache (about 2 minutes on 2 CPU cores)."""
    model = lively_model(True)
    ids = torch.tensor([PROMPT])
    expected = model.generate(ids, max_new_tokens=8, do_sample=False)
    model.forward = torch.compile(model.forward, fullgraph=True)
    assert torch.equal(model.generate(ids, max_new_tokens=8, do_sample=False, cache_implementation="static"), expected)


@NORM
@SHARING
def test_cache_holds_one_layer_per_application_and_decoding_matches_full_forward(shared, norm):
    model = tiny_model(weight_sharing=shared, norm=norm)  # blocks: 2 x (64 wide, 1 head) + 3 x (128 wide, 2 heads)
    x = torch.randint(1, V, (2, 9))
    with torch.no_grad():
        full = model(x, use_cache=False).logits
        out = model(x[:, :6])
        cache = out.past_key_values
        assert model.config.num_hidden_layers == len(cache) == 5
        assert [tuple(layer.keys.shape) for layer in cache.layers] == [(2, 1, 6, 64)] * 2 + [(2, 2, 6, 64)] * 3
        steps = [out.logits]
        for t in range(6, 9):
            out = model(x[:, t : t + 1], past_key_values=cache)
            steps.append(out.logits)
    assert cache.get_seq_length() == 9
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-5)


def test_no_cache_in_training_or_when_disabled():
    model = tiny_model()
    x = torch.randint(1, V, (1, 5))
    assert model(x, use_cache=False).past_key_values is None
    assert model.train()(x).past_key_values is None
    assert model.eval()(x).past_key_values is not None


def test_logits_to_keep():
    model = tiny_model()
    x = torch.randint(1, V, (2, 7))
    with torch.no_grad():
        full = model(x).logits
        torch.testing.assert_close(model(x, logits_to_keep=1).logits, full[:, -1:])
        torch.testing.assert_close(model(x, logits_to_keep=3).logits, full[:, -3:])
        torch.testing.assert_close(model(x, logits_to_keep=torch.tensor([0, 4])).logits, full[:, [0, 4]])


@SHARING
def test_assisted_and_prompt_lookup_decoding_equal_greedy(shared):
    model = lively_model(shared)
    assistant = tiny_model(seed=9, initializer_range=1.0, E=(64,), F=(32,), L=(1,), pad_token_id=0)
    prompt = torch.tensor([PROMPT + PROMPT[:3]])  # a repeat for prompt lookup to find
    expected = model.generate(prompt, max_new_tokens=10, do_sample=False)
    assert torch.equal(model.generate(prompt, max_new_tokens=10, do_sample=False, assistant_model=assistant), expected)
    assert torch.equal(model.generate(prompt, max_new_tokens=10, do_sample=False, prompt_lookup_num_tokens=3), expected)


# ---- 8. behaving like any transformers causal LM ---------------------------------------------------------
@SHARING
def test_hidden_states_count_shapes_and_last(shared):
    model = tiny_model(weight_sharing=shared)
    x = torch.randint(1, V, (2, 7))
    with torch.no_grad():
        out = model(x, output_hidden_states=True)
    widths = [64, *[64, 64, 128, 128], 64]  # embeddings, the 5 applied layers, the last one projected to D
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    assert [tuple(h.shape) for h in out.hidden_states] == [(2, 7, w) for w in widths]
    assert torch.equal(out.hidden_states[-1], model.model(x).last_hidden_state)
    assert model(x).hidden_states is None and model(x).attentions is None


@SHARING
def test_attentions_with_eager_attention(shared):
    model = tiny_model(weight_sharing=shared, attn_implementation="eager")
    assert model.config._attn_implementation == "eager"
    x = torch.randint(1, V, (2, 7))
    with torch.no_grad():
        out = model(x, output_attentions=True)
    assert [tuple(a.shape) for a in out.attentions] == [(2, 1, 7, 7)] * 2 + [(2, 2, 7, 7)] * 3
    for a in out.attentions:
        torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:-1]))
        assert not a.triu(1).any()  # causal: no weight on later positions
    with pytest.raises(ValueError, match="output_attentions=True needs attn_implementation='eager'"):
        tiny_model(weight_sharing=shared)(x, output_attentions=True)


def test_generate_returns_hidden_states_and_attentions():
    model = lively_model(True, attn_implementation="eager")
    out = model.generate(
        torch.tensor([PROMPT]),
        max_new_tokens=3,
        do_sample=False,
        return_dict_in_generate=True,
        output_hidden_states=True,
        output_attentions=True,
    )
    assert len(out.hidden_states) == len(out.attentions) == 3  # one entry per generated token
    assert [len(step) for step in out.hidden_states] == [6, 6, 6]
    assert out.hidden_states[0][0].shape == (1, 5, 64) and out.hidden_states[1][0].shape == (1, 1, 64)
    assert out.attentions[0][4].shape == (1, 2, 5, 5) and out.attentions[2][4].shape == (1, 2, 1, 7)


def test_attn_implementation_sdpa_and_eager_give_the_same_outputs(saved):
    _, path = saved
    register()
    sdpa = AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa").eval()
    eager = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    assert (sdpa.config._attn_implementation, eager.config._attn_implementation) == ("sdpa", "eager")
    ids = torch.tensor([[5, 17, 33, 8, 61], [0, 0, 40, 2, 77]])
    mask = torch.tensor([[1] * 5, [0, 0, 1, 1, 1]])
    with torch.no_grad():
        torch.testing.assert_close(sdpa(ids).logits, eager(ids).logits, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(
            sdpa(ids, attention_mask=mask).logits[:, 2:],
            eager(ids, attention_mask=mask).logits[:, 2:],
            rtol=1e-4,
            atol=1e-5,
        )
    assert torch.equal(
        sdpa.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False),
        eager.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False),
    )


def test_return_dict_false_gives_tuples():
    model = tiny_model()
    x = torch.randint(1, V, (2, 6))
    expected = model(x, labels=x)
    loss, logits = model(x, labels=x, return_dict=False, use_cache=False)
    assert torch.equal(loss, expected.loss) and torch.equal(logits, expected.logits)
    logits, cache = model(x, return_dict=False)
    assert torch.equal(logits, expected.logits) and len(cache) == 5
    (hidden,) = model.model(x, use_cache=False, return_dict=False)
    assert hidden.shape == (2, 6, 64)


def test_return_dict_is_in_the_signature_that_exporters_bind():
    """torch.export (as transformers' exporters call it) binds keyword arguments to forward's signature:
    return_dict must be a named parameter there, not only a keyword @can_return_tuple takes."""
    model = tiny_model().eval()
    x = torch.randint(1, V, (1, 6))
    for module in (model, model.model):
        assert "return_dict" in inspect.signature(module.forward).parameters
    program = torch.export.export(model, (), {"input_ids": x, "use_cache": False, "return_dict": True})
    assert torch.allclose(program.module()(input_ids=x, use_cache=False, return_dict=True).logits, model(x).logits)


def test_unknown_keyword_arguments_are_rejected():
    model = tiny_model()
    x = torch.randint(1, V, (1, 5))
    with pytest.raises(TypeError, match="output_hiden_states"):
        model(x, output_hiden_states=True)
    with pytest.raises(TypeError, match="attention_masks"):
        model.model(x, attention_masks=torch.ones_like(x))
    with pytest.raises(ValueError, match="output_hiden_states"):
        model.generate(x, max_new_tokens=2, output_hiden_states=True)


@SHARING
def test_generate_forwards_inputs_embeds_and_position_ids(shared):
    model = lively_model(shared)
    ids = torch.tensor([PROMPT])
    by_ids = model.generate(ids, max_new_tokens=6, do_sample=False)
    by_embeds = model.generate(inputs_embeds=model.model.wte(ids), max_new_tokens=6, do_sample=False)
    assert by_embeds[0].tolist() == by_ids[0, 5:].tolist()  # with inputs_embeds only new tokens come back

    shifted = model.generate(ids, position_ids=torch.arange(5)[None] + 3, max_new_tokens=6, do_sample=False)
    seq = PROMPT
    for _ in range(6):  # the same greedy loop with every position moved by 3
        with torch.no_grad():
            logits = model(torch.tensor([seq]), position_ids=torch.arange(len(seq))[None] + 3).logits
        seq = [*seq, int(logits[0, -1].argmax())]
    assert shifted[0].tolist() == seq and shifted[0].tolist() != by_ids[0].tolist()


@SHARING
def test_gradient_checkpointing_gives_the_same_gradients(shared):
    x = torch.randint(1, V, (2, 10))
    grads = []
    for checkpointing in (False, True):
        model = tiny_model(weight_sharing=shared).train()
        if checkpointing:
            model.activation_checkpointing_enable()  # gradient_checkpointing_enable() is its deprecated alias
            assert all(layer.gradient_checkpointing for layer in model.modules() if isinstance(layer, MerinoLayer))
        out = model(x, labels=x, use_cache=True)
        assert (out.past_key_values is None) == checkpointing  # checkpointing switches the cache off
        out.loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_packed_documents_do_not_see_each_other(implementation):
    model = tiny_model(attn_implementation=implementation)
    a, b = torch.randint(1, V, (1, 6)), torch.randint(1, V, (1, 4))
    packed = torch.cat([a, b], dim=1)
    positions = torch.cat([torch.arange(6), torch.arange(4)])[None]  # restarting positions mark the boundary
    with torch.no_grad():
        together = model(packed, position_ids=positions).logits
        alone = torch.cat([model(a).logits, model(b).logits], dim=1)
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_standard_config_attributes():
    config = tiny_config(E=(64, 128, 192), F=(32, 48, 96), L=(2, 3, 1), D=96)
    assert config.hidden_size == 96 == config.embed_proj_dim
    assert config.num_hidden_layers == 6
    assert config.num_attention_heads == config.num_key_value_heads == 3  # widest block: 192 / 64
    assert config.intermediate_size == 96 and config.use_cache is True
    assert "num_hidden_layers" not in config.to_dict()  # derived, never saved


def test_loss_with_num_items_in_batch_accumulates_like_one_batch():
    """HF Trainer with gradient accumulation passes the target count of all micro-batches."""
    model = tiny_model()
    x = torch.randint(1, V, (4, 8))
    labels = x.clone()
    labels[0, 3:] = -100  # micro-batches with different target counts
    whole = model(x, labels=labels).loss
    n = int((labels[:, 1:] != -100).sum())
    parts = [model(x[i : i + 2], labels=labels[i : i + 2], num_items_in_batch=n).loss for i in (0, 2)]
    torch.testing.assert_close(sum(parts), whole)
    assert MerinoForCausalLM.accepts_loss_kwargs
