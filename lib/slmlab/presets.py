"""The Phi-3 PEFT presets: which modules get adapters, and each method's config.

Phi-3 fuses q, k and v into `qkv_proj` and the MLP's gate and up projections into
`gate_up_proj`; recipes written for Llama (`q_proj`, `v_proj`, ...) match nothing here.
Labs write these configs inline to teach them and assert they equal the presets.
Importing it also sets the CPU's floating-point mode for training (`flush_denormals`).
"""

import copy

import torch
from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig, get_peft_model

PHI3_LORA_TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
# The course's LoRA dropout (lab 03's recipe; the SFT presets, the adapter cache's key and
# Olive's LoRA pass read it here). None: its 150-step runs do not overfit (lab 03's
# validation loss still falls at the end), and on a CPU a dropout mask per adapted input
# costs 9-15 % of each step. Raise it (0.05-0.1) when validation loss turns up (lab 03's
# remedies).
LORA_DROPOUT = 0.0


def flush_denormals() -> bool:
    """Round denormal floats (below ~1.2e-38) to zero in this thread's CPU arithmetic, as
    GPUs do; True where the CPU supports it (x86 with SSE3).

    A CPU computes with denormals ~100x slower than with normal floats. Training runs that
    collapse fill the optimizer's state with them: lab 03's rank 64 adapter, stuck at
    chance, went from ~0.2 to ~0.7 s a step once its squared gradients fell below 1e-38,
    and took 75 s instead of 31 s, with the same logged losses. Called when this module is
    imported (every training path of the course imports it) and by `train_loop`. Threads
    started afterwards inherit the mode: torch's OpenMP pool, which starts at the first
    parallel operation (a pool started before keeps the CPU's default in its threads).
    """
    return torch.set_flush_denormal(True)


flush_denormals()


def lora_config(r: int = 8, alpha: int = 16, dropout: float = LORA_DROPOUT) -> LoraConfig:
    """LoRA on Phi-3's fused projections (qkv_proj, gate_up_proj) and the others."""
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout,
                      target_modules=PHI3_LORA_TARGETS, task_type="CAUSAL_LM")


def add_lora(model, r: int = 8, alpha: int = 16, dropout: float = 0.0):
    """Wrap `model` with PEFT LoRA adapters on the Phi-3 projections."""
    return get_peft_model(model, lora_config(r, alpha, dropout))


def peft_config(method: str, rank: int = 8):
    """The PEFT config of each parameter-efficient method of lab 08."""
    if method in ("lora", "qlora"):
        return lora_config(rank, alpha=2 * rank, dropout=0.0)
    if method == "ia3":  # scales qkv_proj's output (q, k and v: fused) and down_proj's input
        return IA3Config(task_type="CAUSAL_LM", target_modules=["qkv_proj", "down_proj"],
                         feedforward_modules=["down_proj"])
    if method == "prompt_tuning":  # 8 trainable "virtual token" embeddings before the input
        return PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=8)
    if method == "prefix_tuning":  # trainable keys/values for 8 positions in every layer
        return PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=8)
    raise ValueError(f"no PEFT config for method {method!r}")


def four_bit_config(compute_dtype: torch.dtype = torch.float32):
    """QLoRA's base: nf4 with double quantization; compute in fp32 on a CPU, bf16 on a
    recent GPU."""
    from transformers import BitsAndBytesConfig  # here: the import is slow, few callers

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute_dtype)


def phi3_mini_skeleton():
    """Phi-3-mini's modules on the meta device: its real shapes, no weights, no memory
    (`phi3_family`, where the published configs live)."""
    from slmlab import phi3_family  # here: it imports transformers' Phi-3 model

    return phi3_family.skeleton("Phi-3-mini-4k")


def lora_footprint(model, r: int, alpha: int, targets: list[str]) -> dict:
    """What LoRA on `targets` adds to `model`, counted by PEFT on a copy (the model is
    untouched): trainable parameters, their share of all parameters, the adapter's MB."""
    if not targets:
        raise ValueError("choose at least one module to adapt")
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets),
                        task_type="CAUSAL_LM")
    counted = get_peft_model(copy.deepcopy(model), config)
    added = [p for p in counted.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in added)
    total = sum(p.numel() for p in counted.parameters())
    return {"trainable": trainable, "percent": 100 * trainable / total,
            "adapter_mb": sum(p.numel() * p.element_size() for p in added) / 1e6,
            "scale": alpha / r}
