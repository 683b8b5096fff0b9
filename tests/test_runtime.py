"""Latency backends: the same forward pass through torch and through ONNX Runtime (the edge runtime)."""

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from merino.latency import LatencyTable, build_latency_table, measure_models, merino_model
from merino.runtime import compile_call
from merino.space import Architecture, Block, SearchSpace

CONVENTION = {"vocab_size": 64, "embed_proj_dim": 32, "max_positions": 16, "head_dim": 16, "weight_sharing": True}


def gpt2():
    """A GPT-2 like the paper's baseline: its mask code uses torch.diff, which ONNX opset 17 lacks."""
    return GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=2, n_head=2)).eval()


@pytest.mark.parametrize(
    "make",
    [lambda: merino_model(Architecture((Block(16, 32, 2), Block(32, 64, 1))), CONVENTION), gpt2],
    ids=["merino", "gpt2"],
)
def test_onnxruntime_runs_the_forward_pass_torch_runs(make):
    torch.manual_seed(0)
    model = make()
    ids = torch.randint(0, 64, (1, 12))
    with torch.inference_mode():
        expected = compile_call(model, ids)().logits.numpy()
    (logits,) = compile_call(model, ids, "onnxruntime", threads=1)()
    assert logits.shape == expected.shape
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    assert not model.training  # exporting leaves the model in eval mode


def test_a_layer_with_a_causal_none_mask_runs_through_onnxruntime():
    model = merino_model(Architecture((Block(16, 32, 1),)), CONVENTION)
    layer, x = model.model.blocks[0].layers[0], torch.randn(1, 8, 16)
    with torch.inference_mode():
        expected = layer(x, None)[0].numpy()
    np.testing.assert_allclose(compile_call(layer, (x, None), "onnxruntime")()[0], expected, atol=1e-5)


def test_measure_models_and_latency_tables_record_their_backend():
    r = measure_models(
        {"m": lambda: merino_model(Architecture((Block(16, 32, 1),)), CONVENTION)},
        seq_len=8,
        warmup=1,
        repeats=2,
        threads=1,
        backend="onnxruntime",
    )
    assert r["protocol"]["backend"] == "onnxruntime" and r["protocol"]["onnxruntime_version"]
    assert len(r["models"]["m"]["samples_ms"]) == 2
    space = SearchSpace(
        n_blocks=1, e_min=16, e_max=32, e_step=16, f_min=32, f_max=32, f_step=32, depths=(1,), head_dim=16
    )
    table = build_latency_table(
        space, CONVENTION, seq_len=8, warmup=0, repeats=1, passes=1, threads=1, backend="onnxruntime"
    )
    assert table.protocol["backend"] == "onnxruntime" and table.describe()["backend"] == "onnxruntime"
    assert LatencyTable.from_dict(table.to_dict()).predict(Architecture((Block(32, 32, 1),))) > 0


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="latency.devices.<device>.backend"):
        measure_models({"m": torch.nn.Linear(2, 2)}, inputs=torch.ones(1, 2), backend="tflite")
