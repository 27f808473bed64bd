"""Bottleneck adapters (Houlsby et al., 2019): the third family of PEFT methods.

A small two-layer network — down-project to `size`, a nonlinearity, up-project back — is
added to the output of each decoder layer's attention (`o_proj`) and MLP (`down_proj`),
as a residual: h + up(gelu(down(h))). `up` starts at zero, so the adapted model computes
exactly what the base did; only the adapters train. Unlike LoRA's update, which is linear
and folds into the weight it sits beside, the nonlinearity keeps an adapter a separate
step at inference: it can never be merged away (lab 08 measures what that costs).
"""

import torch
from torch import nn
from torch.nn import functional as F


class Bottleneck(nn.Module):
    """h + up(gelu(down(h))), with `up` zero at the start (the identity)."""

    def __init__(self, hidden: int, size: int):
        super().__init__()
        self.down = nn.Linear(hidden, size)
        self.up = nn.Linear(size, hidden)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(F.gelu(self.down(h)))


class WithAdapter(nn.Module):
    """`module`, then a bottleneck adapter on its output."""

    def __init__(self, module: nn.Module, adapter: nn.Module):
        super().__init__()
        self.module, self.adapter = module, adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.module(x))


def add_bottlenecks(model, size: int = 16):
    """Freeze `model` (a Phi-3) and put a bottleneck adapter after every layer's attention
    and MLP output projections; returns the model, whose adapters alone train."""
    if size < 1:
        raise ValueError(f"size must be at least 1, not {size}")
    for parameter in model.parameters():
        parameter.requires_grad = False
    hidden = model.config.hidden_size
    for layer in model.model.layers:
        weight = layer.self_attn.o_proj.weight
        for parent, name in ((layer.self_attn, "o_proj"), (layer.mlp, "down_proj")):
            adapter = Bottleneck(hidden, size).to(weight.device, weight.dtype)
            setattr(parent, name, WithAdapter(getattr(parent, name), adapter))
    return model


def adapter_state_dict(model) -> dict[str, torch.Tensor]:
    """Only the adapters' tensors: what a bottleneck-adapted model ships."""
    return {name: tensor for name, tensor in model.state_dict().items() if ".adapter." in name}


def parameter_count(hidden: int, layers: int, size: int) -> int:
    """Trainable parameters of `add_bottlenecks`: two adapters a layer, each down (hidden x
    size + size) and up (size x hidden + hidden)."""
    return layers * 2 * (2 * hidden * size + size + hidden)
