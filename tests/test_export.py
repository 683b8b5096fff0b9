"""ONNX export: prefill and a cached decode step run in ONNX Runtime give torch's logits (fp32, 1e-4)."""

import numpy as np
import onnxruntime as ort
import pytest
import torch

from merino.export import cache_names, export_onnx
from merino.model import MerinoConfig, MerinoForCausalLM


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "unshared"])
def test_onnx_prefill_and_cached_decode_match_torch(shared, tmp_path):
    torch.manual_seed(0)
    model = MerinoForCausalLM(
        MerinoConfig(
            vocab_size=97,
            embed_proj_dim=64,
            max_position_embeddings=64,
            block_embed_dims=[64, 128],
            block_ffn_dims=[32, 48],
            block_depths=[2, 3],
            weight_sharing=shared,
        )
    ).eval()
    paths = export_onnx(model, tmp_path)
    prefill, decode = (ort.InferenceSession(str(paths[k])) for k in ("prefill", "decode"))

    ids = torch.randint(1, 97, (3, 11))  # other batch and length than the export's examples
    positions = torch.arange(11).expand(3, 11)
    with torch.no_grad():
        expected = model(ids, use_cache=True)
    out = prefill.run(None, {"input_ids": ids.numpy(), "position_ids": positions.numpy()})
    assert len(out) == 1 + 2 * model.config.num_hidden_layers
    np.testing.assert_allclose(out[0], expected.logits.numpy(), rtol=0, atol=1e-4)

    cache = expected.past_key_values
    for step, token in enumerate(([5], [6], [7])):
        new = torch.tensor([token] * 3)  # (3, 1)
        feed = {"input_ids": new.numpy(), "position_ids": np.full((3, 1), 11 + step)}
        feed.update(zip(cache_names(model, "past"), out[1:]))
        out = decode.run(None, feed)
        with torch.no_grad():
            expected = model(new, past_key_values=cache, use_cache=True)
        assert out[1].shape == (3, 1, 12 + step, 64)
        np.testing.assert_allclose(out[0], expected.logits.numpy(), rtol=0, atol=1e-4)
