"""Peak memory of a forward pass, the KV cache of generation, and the cost model's `memory` against both."""

import pytest

from merino.cost import CostModel
from merino.latency import merino_model
from merino.memory import check_memory_model, measure_peak_memory
from merino.space import Architecture, Block

CONVENTION = {"vocab_size": 1024, "embed_proj_dim": 32, "max_positions": 16, "head_dim": 32, "weight_sharing": True}


def test_memory_model_bounds_the_measured_peak():
    """Weights match exactly; where the logits outgrow a layer's activations (every vocabulary this project
    uses) the measured activation peak is the logits phase T (D + V) alone, and the model counts more."""
    arch = Architecture((Block(32, 64, 2), Block(64, 128, 1)))
    m = measure_peak_memory(merino_model(arch, CONVENTION), seq_len=16)
    cost = CostModel(vocab_size=1024, embed_proj_dim=32, max_positions=16, head_dim=32, memory_seq_len=16)
    assert m["weight_bytes"] == cost.params(arch) * 4 and m["buffer_bytes"] == 0
    assert m["activation_peak_bytes"] == cost.activation_bytes_floor() == 16 * (32 + 1024) * 4
    assert m["peak_bytes"] < cost.memory_bytes(arch)


@pytest.mark.parametrize("shared", [True, False])
def test_memory_budget_counts_the_kv_cache_of_every_applied_layer_exactly(shared):
    """Keys and values of E = heads x head width per applied layer: a shared layer applied L times caches L times."""
    arch = Architecture((Block(32, 64, 2), Block(64, 128, 3)))
    without = CostModel(
        vocab_size=1024, embed_proj_dim=32, max_positions=16, head_dim=32, memory_seq_len=16, shared=shared
    )
    cost = CostModel(**{**without.__dict__, "memory_kv_tokens": 12})
    expected = 2 * 12 * (2 * 32 + 3 * 64) * 4
    assert cost.kv_cache_bytes(arch) == expected
    assert cost.memory_bytes(arch) - without.memory_bytes(arch) == expected
    (row,) = check_memory_model(cost, [arch], {**CONVENTION, "weight_sharing": shared})
    assert row["measured_kv_cache_bytes"] == row["model_kv_cache_bytes"] == expected and row["kv_tokens"] == 12
    assert row["measured_weight_bytes"] == row["model_weight_bytes"]
    assert row["rel_error"] > 0  # still an upper bound


def test_kv_context_beyond_the_positions_is_refused_naming_the_key():
    with pytest.raises(ValueError, match="memory_kv_tokens"):
        CostModel(max_positions=16, memory_kv_tokens=17)
    assert (
        CostModel.from_config(
            {"vocab_size": 64, "embed_proj_dim": 32, "max_positions": 16, "head_dim": 32, "weight_sharing": True},
            {"flops_seq_len": 8, "count_lm_head": False, "memory_bits": 32, "memory_seq_len": 8},
        ).memory_kv_tokens
        == 0
    )
