"""Bottleneck adapters: the identity at the start, only the adapters train, never merged."""

import pytest
import torch

from slmlab import bottleneck, zoo


def test_adapters_start_as_the_identity_and_alone_train(student_logits):
    ids, expected = student_logits
    size = 4
    adapted = bottleneck.add_bottlenecks(zoo.load_model("tiny-phi3-student"), size).eval()
    with torch.no_grad():
        assert torch.equal(adapted(input_ids=ids).logits, expected)
    trainable = [n for n, p in adapted.named_parameters() if p.requires_grad]
    assert trainable and all(".adapter." in n for n in trainable)
    config = adapted.config
    assert sum(p.numel() for p in adapted.parameters() if p.requires_grad) == \
        bottleneck.parameter_count(config.hidden_size, config.num_hidden_layers, size)
    assert set(bottleneck.adapter_state_dict(adapted)) == set(trainable)


def test_a_trained_adapter_changes_the_output_and_is_not_a_linear_map():
    torch.manual_seed(0)
    adapter = bottleneck.Bottleneck(8, 3)
    torch.nn.init.normal_(adapter.up.weight)
    x = torch.randn(5, 8)
    assert not torch.allclose(adapter(x), x)
    # GELU between down and up: no single matrix W' gives h + up(gelu(down(h))) for all h,
    # so unlike LoRA it cannot be folded into the weight before it
    assert not torch.allclose(adapter(2 * x) - 2 * x, 2 * (adapter(x) - x), atol=1e-4)
    with pytest.raises(ValueError, match="size must be at least 1"):
        bottleneck.add_bottlenecks(zoo.load_model("tiny-phi3-student"), 0)
