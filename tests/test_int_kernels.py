"""Integer kernels (ONNX Runtime MatMulNBits) on GPTQ/RTN codes: one matrix against its dequantized weights
(INT8 one grid per row, INT4 and INT2 groups, widths that are not whole blocks), schemes the kernel rejects,
a shared MeRino layer and GPT-2's Conv1D loaded through ``load_quantized(kernels="integer")``."""

import pytest
import torch
from test_quantize import markov_tokens, tiny_gpt2, tiny_merino

from merino.int_kernels import IntegerLinear, integer_model, resident_weight_bytes, unsupported_reason
from merino.quantize import (
    DEQUANTIZED,
    QuantSpec,
    inference_kernels,
    load_quantized,
    quantize_model,
    read_quantized,
    rtn_quantize,
    save_quantized,
)


def relative_error(y, ref):
    return float((y - ref).norm() / ref.norm())


@pytest.mark.parametrize(
    "bits,group_size,cols", [(8, -1, 100), (8, -1, 40), (8, -1, 256), (4, 32, 96), (4, 16, 72), (2, 32, 64)]
)
def test_integer_linear_computes_the_dequantized_matrix(bits, group_size, cols):
    g = torch.Generator().manual_seed(bits + cols)
    W, bias = torch.randn(24, cols, generator=g), torch.randn(24, generator=g)
    q = rtn_quantize(W, QuantSpec(bits=bits, group_size=group_size, method="rtn"))
    x = torch.randn(2, 5, cols, generator=g)
    ref = x @ q.dequantize().T + bias
    exact = IntegerLinear(q, bias, compute="float32")(x)
    assert exact.shape == ref.shape and relative_error(exact, ref) < 1e-5
    integer = IntegerLinear(q, bias, compute="int8")(x)  # activations quantized to int8 per block
    assert 0 < relative_error(integer, ref) < 0.02, relative_error(integer, ref)


def test_schemes_the_kernel_rejects_are_named_not_dequantized_silently(tmp_path):
    assert unsupported_reason(8, 100, 100) is None and unsupported_reason(4, 32, 100) is None
    assert "not 3" in unsupported_reason(3, 32, 64)
    assert "group_size 48" in unsupported_reason(4, 48, 96)
    q = rtn_quantize(torch.randn(8, 96), QuantSpec(bits=4, group_size=48, method="rtn"))
    with pytest.raises(ValueError, match="group_size 48"):
        IntegerLinear(q)
    with pytest.raises(ValueError, match="quantization.kernels.compute"):
        IntegerLinear(rtn_quantize(torch.randn(8, 32), QuantSpec(bits=8, group_size=-1, method="rtn")), compute="int4")
    model = tiny_merino()
    quantized = quantize_model(model, QuantSpec(bits=4, group_size=48, method="rtn"))
    save_quantized(model, quantized, tmp_path)
    used, description = inference_kernels(read_quantized(tmp_path)[0], "integer")
    assert used == "dequantize" and description.startswith(DEQUANTIZED) and "group_size 48" in description
    with pytest.raises(ValueError, match="group_size 48"):
        load_quantized(tmp_path, kernels="integer")
    with pytest.raises(ValueError, match="kernels must be one of"):
        load_quantized(tmp_path, kernels="int")


@pytest.mark.parametrize("bits,group_size", [(8, -1), (4, 32)])
def test_shared_merino_layer_stays_one_integer_module(tmp_path, bits, group_size):
    model = tiny_merino(weight_sharing=True)
    tokens = markov_tokens(4, 24, 128, torch.Generator().manual_seed(5))
    quantized = quantize_model(model, QuantSpec(bits=bits, group_size=group_size), tokens)
    save_quantized(model, quantized, tmp_path)
    dequantized = load_quantized(tmp_path)
    exact = load_quantized(tmp_path, kernels="integer", compute="float32")
    integer = load_quantized(tmp_path, kernels="integer")
    assert (
        inference_kernels(quantized, "integer")[1] == f"onnxruntime com.microsoft.MatMulNBits {bits}-bit, int8 compute"
    )
    layer = integer.model.blocks[0].layers[0]  # applied 3 times per forward
    calls = []
    layer.attn.qkv.register_forward_pre_hook(lambda m, args: calls.append(m))
    assert isinstance(layer.attn.qkv, IntegerLinear) and isinstance(layer.fc_out, IntegerLinear)
    assert not any(isinstance(m, torch.nn.Linear) and m is not integer.lm_head for m in integer.modules())
    with torch.no_grad():
        ref = dequantized(tokens).logits
        assert relative_error(exact(tokens).logits, ref) < 1e-5
        assert relative_error(integer(tokens).logits, ref) < 0.02
    assert len(calls) == 3 and all(c is layer.attn.qkv for c in calls)
    assert resident_weight_bytes(integer) < resident_weight_bytes(dequantized)


def test_gpt2_conv1d_runs_on_integer_kernels(tmp_path):
    model = tiny_gpt2()
    tokens = markov_tokens(4, 32, 128, torch.Generator().manual_seed(3))
    quantized = quantize_model(model, QuantSpec(bits=4, group_size=32), tokens)
    assert set(quantized.layouts.values()) == {"conv1d"}
    save_quantized(model, quantized, tmp_path)
    dequantized = load_quantized(tmp_path)
    exact = integer_model(load_quantized(tmp_path), read_quantized(tmp_path)[0], compute="float32")
    assert isinstance(exact.transformer.h[1].mlp.c_proj, IntegerLinear)
    with torch.no_grad():
        ref = dequantized(tokens).logits
        assert relative_error(exact(tokens).logits, ref) < 1e-5
        assert relative_error(load_quantized(tmp_path, kernels="integer")(tokens).logits, ref) < 0.02
