"""loralib layer swaps for Phi-3: replace projections with LoRA layers, keep the weights.

Lab 02 writes the swap of one layer inline; `swap_attention` repeats it for every layer.
Phi-3 fuses q, k and v into `qkv_proj`, so it becomes one `lora.MergedLinear` whose
`enable_lora` says which of the three thirds get a low-rank update.
"""

from collections.abc import Sequence

import loralib as lora
import torch
from torch import nn


def merged_linear_from(linear: nn.Linear, r: int, alpha: int,
                       enable: Sequence[bool] = (True, False, True)) -> lora.MergedLinear:
    """A `lora.MergedLinear` with `linear`'s weights; `enable` picks of q, k, v."""
    layer = lora.MergedLinear(linear.in_features, linear.out_features, r=r, lora_alpha=alpha,
                              enable_lora=list(enable), bias=linear.bias is not None,
                              merge_weights=True)
    _copy_base(linear, layer)
    return layer


def linear_from(linear: nn.Linear, r: int, alpha: int) -> lora.Linear:
    """A `lora.Linear` with `linear`'s weights."""
    layer = lora.Linear(linear.in_features, linear.out_features, r=r, lora_alpha=alpha,
                        bias=linear.bias is not None, merge_weights=True)
    _copy_base(linear, layer)
    return layer


def embedding_from(embedding: nn.Embedding, r: int, alpha: int) -> lora.Embedding:
    """A `lora.Embedding` with `embedding`'s weights."""
    layer = lora.Embedding(embedding.num_embeddings, embedding.embedding_dim, r=r,
                           lora_alpha=alpha, padding_idx=embedding.padding_idx,
                           merge_weights=True)
    _copy_base(embedding, layer)
    return layer


@torch.no_grad()
def _copy_base(source: nn.Module, target: nn.Module) -> None:
    target.weight.copy_(source.weight)
    if getattr(source, "bias", None) is not None:
        target.bias.copy_(source.bias)
    target.to(source.weight.device, source.weight.dtype)


def swap_attention(model, r: int = 8, alpha: int = 16, qkv: Sequence[bool] = (True, False, True),
                   o_proj: bool = True, embeddings: bool = False):
    """Swap every layer's `qkv_proj` (and `o_proj`, the embeddings) for loralib layers."""
    if not any(qkv) and not o_proj and not embeddings:
        raise ValueError("nothing to adapt: enable qkv, o_proj or embeddings")
    for layer in model.model.layers:
        attention = layer.self_attn
        if any(qkv):
            attention.qkv_proj = merged_linear_from(attention.qkv_proj, r, alpha, qkv)
        if o_proj:
            attention.o_proj = linear_from(attention.o_proj, r, alpha)
    if embeddings:
        model.model.embed_tokens = embedding_from(model.model.embed_tokens, r, alpha)
    return model
