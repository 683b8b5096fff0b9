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
from merino.model import MerinoConfig, MerinoForCausalLM, register
from merino.space import Architecture, Block, SearchSpace

V, P = 97, 64


def tiny_config(E=(64, 128), F=(32, 48), L=(2, 3), D=64, **kwargs):
    args = dict(vocab_size=V, embed_proj_dim=D, max_position_embeddings=P, block_embed_dims=list(E),
                block_ffn_dims=list(F), block_depths=list(L))
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
        space = SearchSpace(n_blocks=int(rng.integers(1, 4)), e_min=64, e_max=128, e_step=64, f_min=16, f_max=64,
                            f_step=16, depths=(1, 2, 3), non_decreasing_width=False)
        arch = space.to_architecture(space.sample(rng, 1)[0])
        d = int(rng.choice([64, 128]))
        config = MerinoConfig.from_architecture(arch, vocab_size=V, embed_proj_dim=d, max_position_embeddings=P,
                                                weight_sharing=shared)
        assert config.architecture_dict() == {"E": arch.widths, "F": arch.ffn_dims, "L": arch.depths}
        cost = CostModel(vocab_size=V, embed_proj_dim=d, max_positions=P, head_dim=64, shared=shared)
        assert n_params(MerinoForCausalLM(config)) == cost.params(arch), (i, str(arch), d)


def test_paper_default_config_matches_cost_model():
    config = MerinoConfig()
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


def test_load_with_remote_code_in_fresh_process(saved, tmp_path):
    model, path = saved
    x = [[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16]]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"),
           "TRANSFORMERS_VERBOSITY": "error"}
    proc = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(path), json.dumps(x)], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=120)
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
    ids = torch.tensor([long, [0, 0] + short])
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
    expected = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1),
                                                 ignore_index=-100)
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
@pytest.mark.parametrize("kwargs, name", [
    (dict(E=(64, 100)), "block_embed_dims[1]"),
    (dict(F=(32,)), "block_ffn_dims"),
    (dict(L=(2, 0)), "block_depths[1]"),
    (dict(L=(2, 1.5)), "block_depths[1]"),
    (dict(E=()), "block_embed_dims"),
    (dict(head_dim=0), "head_dim"),
    (dict(vocab_size=-3), "vocab_size"),
    (dict(dropout=1.0), "dropout"),
])
def test_config_validation(kwargs, name):
    with pytest.raises(ValueError, match=name.replace("[", r"\[")):
        tiny_config(**kwargs)


def test_config_from_architecture_round_trip(tmp_path):
    arch = Architecture((Block(64, 96, 1), Block(128, 160, 4)))
    config = MerinoConfig.from_architecture(arch, vocab_size=V, embed_proj_dim=64, weight_sharing=False)
    config.save_pretrained(tmp_path)
    again = MerinoConfig.from_pretrained(tmp_path)
    assert again.architecture_dict() == {"E": [64, 128], "F": [96, 160], "L": [1, 4]}
    assert again.weight_sharing is False and again.vocab_size == V
