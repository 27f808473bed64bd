"""How much memory fine-tuning a Phi-3 model needs, from its config alone.

`estimate(config, method, batch, seq_len)` adds up, in bytes:

- weights: every parameter at `weight_bytes` (2 for bf16); QLoRA stores the decoder's
  linear layers in nf4 with double quantization (`qlora.four_bit_bytes`: 4-bit codes, an
  8-bit scale per 64 weights, an fp32 scale per 256 blocks), the rest at `weight_bytes`;
- gradients and AdamW states: full fine-tuning keeps a gradient and two AdamW moments per
  parameter in the parameter's dtype (3 x weight_bytes x P); LoRA and QLoRA only for the
  adapter, which PEFT keeps in fp32 (weights + gradient + two moments = 16 bytes each);
- activations saved for the backward pass, per token and decoder layer, in bytes, with
  b = bytes of the compute dtype, h = hidden size, i = MLP size, kv = key/value width:
      full fine-tuning          b (10h + 4i + 3kv) + 2 (4 - b) h
      LoRA / QLoRA (base frozen) b ( 8h + 4i + 3kv) + 2 (4 - b) h
      + LoRA dropout > 0         4 (3h + i)   (the dropped-out inputs of the fp32 adapters)
  The (4 - b) term is RMSNorm's fp32 copies. With gradient checkpointing only each layer's
  input (b h) is kept, plus one layer's activations while it is recomputed;
- the final norm, (2b + 4) h, and the logits: 8 V bytes per token (fp32 logits for the
  loss and their gradient).

The per-layer counts were taken from the tensors autograd saves in transformers' Phi-3
layer with SDPA attention (`torch.autograd.graph.saved_tensors_hooks`), parameters
excluded; they are exact for fp32 and within about 15 % in bf16 with LoRA dropout (PEFT's
casts). Not counted: the CUDA context and allocator slack (`GPU_OVERHEAD_GB` in `fits`),
temporary buffers inside kernels, and savings from fused or chunked losses, which make the
logit term an upper bound. `tests/test_memory_plan.py` checks the estimate against the
tensors measured in a real fp32 training step of the tiny zoo model: weights, gradients
and AdamW moments exact, activations within 3 % (LoRA) and 0.2 % (full fine-tuning).
"""

from slmlab.qlora import four_bit_bytes

METHODS = ("full", "lora", "qlora")
LORA_TARGETS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
# (name, GB): common single GPUs a learner rents or has
GPUS = (("T4", 16), ("L4 / A10G", 24), ("A100 40GB", 40), ("A100 / H100 80GB", 80))
GPU_OVERHEAD_GB = 1.0  # CUDA context, cuBLAS workspaces and allocator slack, roughly


def _shape(config) -> dict:
    h, heads = config.hidden_size, config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    return {"h": h, "i": config.intermediate_size, "layers": config.num_hidden_layers,
            "kv": config.num_key_value_heads * head_dim, "vocab": config.vocab_size,
            "tied": bool(config.tie_word_embeddings)}


def linear_matrices(config) -> list[tuple[int, int]]:
    """(in, out) of each adapted linear layer of one decoder layer: qkv, o, gate_up, down."""
    s = _shape(config)
    return [(s["h"], s["h"] + 2 * s["kv"]), (s["h"], s["h"]), (s["h"], 2 * s["i"]),
            (s["i"], s["h"])]


def parameter_counts(config) -> dict:
    """Parameters in the decoder's linear layers, and all the others (embeddings, lm_head,
    norms)."""
    s = _shape(config)
    linear = s["layers"] * sum(a * b for a, b in linear_matrices(config))
    norms = (2 * s["layers"] + 1) * s["h"]
    embeddings = s["vocab"] * s["h"] * (1 if s["tied"] else 2)
    return {"linear": linear, "other": embeddings + norms}


def lora_parameters(config, r: int) -> int:
    """LoRA's trainable parameters at rank r on all four linear layers of every layer."""
    return _shape(config)["layers"] * sum(r * (a + b) for a, b in linear_matrices(config))


def activation_bytes_per_token(config, method: str, compute_bytes: int,
                               gradient_checkpointing: bool, lora_dropout: float) -> float:
    """Bytes saved for the backward pass per token (see the module docstring)."""
    s, b = _shape(config), compute_bytes
    h, i, kv = s["h"], s["i"], s["kv"]
    frozen_base = method != "full"
    layer = b * ((8 if frozen_base else 10) * h + 4 * i + 3 * kv) + 2 * (4 - b) * h
    if frozen_base and lora_dropout > 0:
        layer += 4 * (3 * h + i)
    layers = s["layers"] * b * h + layer if gradient_checkpointing else s["layers"] * layer
    return layers + (2 * b + 4) * h + 8 * s["vocab"]  # + the final norm, the logits


def estimate(config, method: str, batch: int, seq_len: int, *, weight_bytes: int = 2,
             compute_bytes: int | None = None, gradient_checkpointing: bool = False,
             lora_r: int = 16, lora_dropout: float = 0.05) -> dict:
    """{weights, gradients, optimizer, activations, total} in bytes for one training step of
    `method` ("full", "lora" or "qlora") on `batch` sequences of `seq_len` tokens."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if batch < 1 or seq_len < 1:
        raise ValueError("batch and seq_len must be at least 1")
    compute_bytes = compute_bytes or weight_bytes
    counts = parameter_counts(config)
    total_parameters = counts["linear"] + counts["other"]
    if method == "full":
        weights = weight_bytes * total_parameters
        gradients, optimizer = weight_bytes * total_parameters, 2 * weight_bytes * total_parameters
    else:
        adapter = lora_parameters(config, lora_r)
        if method == "lora":
            base = weight_bytes * total_parameters
        else:  # nf4 per linear matrix, the rest as it is
            per_layer = sum(four_bit_bytes(a * b) for a, b in linear_matrices(config))
            base = _shape(config)["layers"] * per_layer + weight_bytes * counts["other"]
        weights, gradients, optimizer = base + 4 * adapter, 4 * adapter, 8 * adapter
    activations = batch * seq_len * activation_bytes_per_token(
        config, method, compute_bytes, gradient_checkpointing, lora_dropout)
    parts = {"weights": weights, "gradients": gradients, "optimizer": optimizer,
             "activations": activations}
    return parts | {"total": sum(parts.values())}


def fits(total_bytes: float) -> list[str]:
    """The GPUs of `GPUS` whose memory holds `total_bytes` plus `GPU_OVERHEAD_GB`."""
    need_gb = total_bytes / 1e9 + GPU_OVERHEAD_GB
    return [name for name, gb in GPUS if need_gb <= gb]


def plan(configs: dict, batch: int = 4, seq_len: int = 1024, lora_r: int = 16) -> list[dict]:
    """One row per (model, method, checkpointing): GB needed and the smallest GPU it fits."""
    rows = []
    for name, config in configs.items():
        for method in METHODS:
            for checkpointing in (False, True):
                need = estimate(config, method, batch, seq_len, lora_r=lora_r,
                                gradient_checkpointing=checkpointing)
                fit = fits(need["total"])
                rows.append({"model": name, "method": method,
                             "gradient checkpointing": checkpointing,
                             "weights GB": round(need["weights"] / 1e9, 1),
                             "activations GB": round(need["activations"] / 1e9, 1),
                             "total GB": round(need["total"] / 1e9, 1),
                             "smallest GPU that fits": fit[0] if fit else "none of these"})
    return rows
