import numpy as np
import pytest

from merino.cost import Budget, CostModel
from merino.paper import load_reference, paper_structures
from merino.space import Architecture, Block

REF = load_reference()
STRUCTURES = paper_structures(REF)
T5 = REF["table5_parameter_sharing"]
PAPER = {  # name -> (params shared M, params unshared M, FLOPs G)
    "MeRino-52M": (52, T5["60G"]["without"]["params_M"], REF["table3_language_modeling"]["models"]["MeRino-52M"][0]),
    "MeRino-61M": (61, T5["110G"]["without"]["params_M"], REF["table3_language_modeling"]["models"]["MeRino-61M"][0]),
    "MeRino-64M": (64, T5["160G"]["without"]["params_M"], REF["table3_language_modeling"]["models"]["MeRino-64M"][0]),
}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_reproduces_paper_tables_3_5_8_within_3_percent(name):
    cost = CostModel()
    arch = STRUCTURES[name]
    shared, unshared, flops = PAPER[name]
    assert cost.params(arch, shared=True) / 1e6 == pytest.approx(shared, rel=0.03)
    assert cost.params(arch, shared=False) / 1e6 == pytest.approx(unshared, rel=0.03)
    assert cost.flops(arch) / 1e9 == pytest.approx(flops, rel=0.03)


def test_hand_counted_small_model():
    # D=128, V=10, P=16, one block E=64 F=128 L=2 (shared), T=8
    cost = CostModel(vocab_size=10, embed_proj_dim=128, max_positions=16, seq_len=8)
    arch = Architecture((Block(64, 128, 2),))
    layer = 4 * 64 * 64 + 4 * 64 + 2 * 64 * 128 + 128 + 64 + 4 * 64
    proj = (128 * 64 + 64) + (64 * 128 + 128)
    emb = 10 * 128 + 16 * 128 + 2 * 128
    assert cost.params(arch) == layer + proj + emb
    assert cost.params(arch, shared=False) == 2 * layer + proj + emb
    layer_flops = 2 * (8 * (4 * 64 * 64 + 2 * 64 * 128) + 2 * 8 * 8 * 64)
    assert cost.flops(arch) == 2 * layer_flops + 2 * 8 * 128 * 64 * 2
    assert cost.non_embedding_params(arch) == layer + proj + 2 * 128


def test_no_projection_between_equal_widths():
    cost = CostModel()
    same = Architecture((Block(768, 768, 1), Block(768, 768, 1)))
    assert cost.params(same) == 2 * CostModel.layer_params(768, 768) + cost.constant_term("params")


def test_vectorised_equals_scalar(tiny_space, tiny_cost, rng):
    genes = tiny_space.sample(rng, 50)
    for kind in ("flops", "params", "memory"):
        batch = tiny_cost.batch(kind, *tiny_space.decode(genes))
        single = [tiny_cost.cost(kind, tiny_space.to_architecture(g)) for g in genes]
        np.testing.assert_allclose(batch, single)


def test_memory_is_weights_plus_peak_activation():
    cost = CostModel(memory_bits=16, memory_seq_len=128)
    arch = STRUCTURES["MeRino-52M"]
    weights = cost.params(arch) * 2
    peak_layer = max(cost.block_activation_bytes(b.embed_dim, b.ffn_dim) for b in arch.blocks)
    assert cost.memory_bytes(arch) == pytest.approx(weights + cost.activation_bytes_floor() + peak_layer)


@pytest.mark.parametrize(
    "label, kind, value",
    [("flops60G", "flops", 60e9), ("params1.5M", "params", 1.5e6), ("memory64MB", "memory", 64 * 2**20)],
)
def test_budget_parse(label, kind, value):
    b = Budget.parse(label)
    assert (b.kind, b.value) == (kind, value)


@pytest.mark.parametrize("label", ["flops60", "latency50ms", "params50MB", "flops-1G"])
def test_bad_budget_is_named(label):
    with pytest.raises(ValueError, match=repr(label)):
        Budget.parse(label)
