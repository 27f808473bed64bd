import pytest
import torch

from slmlab import metrics, presets, qlora


def test_four_bit_runs_here_and_reports_why_not_when_broken(monkeypatch):
    works, reason = qlora.four_bit_status()
    assert works, reason  # bitsandbytes 0.50 runs nf4 on this CPU; the lab relies on it
    import bitsandbytes as bnb

    def broken(*args, **kwargs):
        raise RuntimeError("no 4-bit kernel")

    monkeypatch.setattr(bnb.nn, "Linear4bit", broken)
    works, reason = qlora.four_bit_status()
    assert not works and "no 4-bit kernel" in reason and "\n" not in reason


def test_nf4_by_hand_matches_bitsandbytes():
    import bitsandbytes.functional as F

    weight = torch.randn(64, 128)
    quantized, state = F.quantize_4bit(weight, blocksize=64, quant_type="nf4")
    from_bnb = F.dequantize_4bit(quantized, state)
    by_hand = qlora.nf4_roundtrip(weight, 64)
    assert torch.allclose(by_hand, from_bnb, atol=1e-5)
    assert (by_hand - weight).abs().mean() < 0.15 * weight.abs().mean()


def test_four_bit_linear_bytes_are_about_an_eighth(student):
    model, _ = student
    from slmlab import zoo

    four_bit, _ = zoo.load("tiny-phi3-student", quantization_config=presets.four_bit_config())
    fp32_bytes = metrics.linear_weight_bytes(model)["bytes"]
    four_bit_bytes = metrics.linear_weight_bytes(four_bit)["bytes"]
    assert 3.5 <= fp32_bytes / four_bit_bytes <= 8


@pytest.mark.parametrize("fixed", [True, False], ids=["workaround", "bug-still-there"])
def test_gradients_flow_through_4bit_layers_after_an_eval_pass(fixed):
    """With the workaround gradients are right; without it, on CPUs that repack, they
    vanish. When a bitsandbytes upgrade fixes that, the second case fails: drop
    `qlora.keep_training_layout` then."""
    import bitsandbytes as bnb

    torch.manual_seed(0)
    weight = torch.randn(64, 64)
    layer = bnb.nn.Linear4bit(64, 64, bias=False, compute_dtype=torch.float32, quant_type="nf4")
    layer.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4")
    layer = layer.to("cpu")  # moving to a device is what quantizes Params4bit
    dequantized = bnb.functional.dequantize_4bit(layer.weight.data, layer.weight.quant_state)
    if not fixed and not layer.support_avx512bf16_for_cpu:
        pytest.skip("this CPU has no AVX512-BF16: bitsandbytes does not repack here")
    if fixed:
        qlora.keep_training_layout(torch.nn.ModuleList([layer]))
    layer.eval()
    with torch.no_grad():
        layer(torch.randn(3, 64))  # an evaluation step, as SFTTrainer runs every eval_steps
    layer.train()
    x = torch.randn(3, 64, requires_grad=True)
    layer(x).sum().backward()
    if not fixed:
        assert x.grad is None, "bitsandbytes fixed CPU repacking: remove keep_training_layout"
        return
    expected = dequantized.sum(dim=0).expand(3, 64)
    assert torch.allclose(x.grad, expected, atol=1e-4)


def test_cpu_repacking_check_agrees_with_bitsandbytes_layers():
    """Lab 04 trains the no-workaround run only where bitsandbytes repacks (AVX512-BF16)."""
    import bitsandbytes as bnb

    layer = bnb.nn.Linear4bit(64, 64, bias=False, compute_dtype=torch.float32, quant_type="nf4")
    assert qlora.cpu_repacks_4bit() == bool(layer.support_avx512bf16_for_cpu)
