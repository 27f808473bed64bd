"""QLoRA on a CPU: can bitsandbytes run 4 bit here, NF4 by hand, 4-bit byte counts.

Lab 04 writes `BitsAndBytesConfig` inline (the preset is `presets.four_bit_config`). This
module checks that bitsandbytes' 4-bit path really runs on this machine (so the lab can
say so in one line when it does not), and gives a plain-PyTorch NF4 round trip that
teaches the format on any CPU.
"""

import os

import torch
from torch import nn

# Set to 1 to run the labs as on a machine where bitsandbytes' 4-bit path does not work
# (the test suite checks that lab 04 then runs its documented fallback to the end).
NO_4BIT_VARIABLE = "SLMLAB_NO_4BIT"

# The 16 NF4 levels of the QLoRA paper: quantiles of a standard normal, scaled to [-1, 1].
NF4_LEVELS = torch.tensor([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
])


def four_bit_status() -> tuple[bool, str]:
    """(works, one-line reason): can bitsandbytes quantize and multiply in 4 bits here?"""
    if os.environ.get(NO_4BIT_VARIABLE) == "1":
        return False, f"4-bit switched off by {NO_4BIT_VARIABLE}=1 (as on a machine without it)"
    try:
        import bitsandbytes as bnb

        layer = bnb.nn.Linear4bit(64, 64, bias=False, compute_dtype=torch.float32,
                                  quant_type="nf4")
        reference = layer.weight.data.clone()
        layer.weight = bnb.nn.Params4bit(reference, requires_grad=False, quant_type="nf4")
        layer = layer.to("cuda" if torch.cuda.is_available() else "cpu")
        x = torch.randn(2, 64, device=layer.weight.device)
        error = (layer(x).float().cpu() - x.cpu() @ reference.T).abs().max().item()
    except Exception as exc:  # noqa: BLE001 - any failure means "no 4-bit here"
        return False, f"bitsandbytes 4-bit does not run here ({type(exc).__name__}: {exc})"
    if error > 0.5:
        return False, f"bitsandbytes 4-bit runs but its output is off by {error:.2f}"
    return True, f"bitsandbytes {bnb.__version__} runs nf4 4-bit layers on this machine"


def nf4_roundtrip(weight: torch.Tensor, block_size: int = 64) -> torch.Tensor:
    """Quantize `weight` to NF4 in blocks (absmax scaling) and dequantize it back."""
    flat = weight.detach().float().reshape(-1, block_size)
    absmax = flat.abs().max(dim=1, keepdim=True).values.clamp(min=1e-12)
    codes = ((flat / absmax).unsqueeze(-1) - NF4_LEVELS).abs().argmin(dim=-1)
    return (NF4_LEVELS[codes] * absmax).reshape(weight.shape)


def four_bit_bytes(n_weights: int, block_size: int = 64, double_quant: bool = True) -> int:
    """Bytes of one nf4 layer with double quantization: 4-bit codes, an 8-bit scale per
    block, an fp32 scale per 256 block scales, and the 256-entry fp32 code book. Without
    double quantization each block keeps an fp32 scale instead."""
    n_blocks = n_weights // block_size
    if not double_quant:
        return n_weights // 2 + n_blocks * 4 + 256 * 4
    return n_weights // 2 + n_blocks + -(-n_blocks // 256) * 4 + 256 * 4


def linear_share(hidden: int, layers: int, intermediate: int, vocab: int,
                 tied: bool = False) -> float:
    """Fraction of a Phi-3 model's weights in its decoder linear layers (norms ignored):
    fused qkv (3 x hidden), o, fused gate_up (2 x intermediate) and down per layer."""
    per_layer = hidden * 3 * hidden + hidden * hidden + 3 * hidden * intermediate
    embeddings = vocab * hidden * (1 if tied else 2)  # input table, and lm_head unless tied
    return layers * per_layer / (layers * per_layer + embeddings)


def cpu_repacks_4bit() -> bool:
    """Does bitsandbytes take its CPU repacking path here (see keep_training_layout)?

    Only CPUs with AVX512-BF16 do; elsewhere training without the workaround is unharmed.
    """
    if torch.cuda.is_available():
        return False
    from bitsandbytes.functional import has_avx512bf16

    return bool(has_avx512bf16())


def keep_training_layout(model: nn.Module) -> int:
    """Stop bitsandbytes from repacking 4-bit weights for CPU inference; returns the count.

    bitsandbytes 0.50 on CPUs with AVX512-BF16 repacks a Linear4bit's weights the first
    time it runs in eval mode without gradients (an evaluation step, say), and never packs
    them back. Every later matmul then goes through `gemv_4bit`, which has no autograd
    formula: gradients stop flowing back through the frozen 4-bit layers, silently
    (PyTorch only warns "an autograd kernel was not registered"). LoRA still trains, but
    on other gradients (lab 04 shows them) and badly: 64.0 ± 14.5 % held-out accuracy
    instead of 92.0 ± 3.1 % over five seeds. Call this right after loading a 4-bit model
    that will be trained.
    """
    import bitsandbytes as bnb

    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    for layer in layers:
        layer.support_avx512bf16_for_cpu = False
    return len(layers)


def nf4_block(weight: torch.Tensor, block: int, block_size: int = 64) -> dict:
    """Lab 04's explorer: one block of `weight` through NF4, with the 16 levels the block
    can take (NF4_LEVELS scaled by the block's absmax) and its rounding error."""
    flat = weight.detach().float().reshape(-1, block_size)
    if not 0 <= block < len(flat):
        raise ValueError(f"block {block} is outside 0..{len(flat) - 1}")
    values = flat[block]
    absmax = float(values.abs().max().clamp(min=1e-12))
    rounded = nf4_roundtrip(values, block_size)
    return {"weights": values.tolist(), "levels": (NF4_LEVELS * absmax).tolist(),
            "rounded": rounded.tolist(), "absmax": absmax,
            "mean_abs_error": float((rounded - values).abs().mean()),
            "relative_error": float((rounded - values).abs().mean() / values.abs().mean())}


def bits_per_weight(block_size: int = 64, double_quant: bool = True) -> float:
    """Storage per weight: the 4-bit code plus its share of the block's scale, an fp32
    absmax per block, or (double quantization) an 8-bit one plus an fp32 per 256 blocks."""
    if double_quant:
        return 4 + 8 / block_size + 32 / (256 * block_size)
    return 4 + 32 / block_size
