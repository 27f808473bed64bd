"""loralib swaps: the swapped model computes what the base did, and trains only LoRA."""

import loralib as lora
import torch

from slmlab import zoo
from slmlab.loralib_swap import embedding_from, swap_attention


def test_every_swap_keeps_the_outputs_and_counts_r_times_in_plus_out(student_logits):
    ids, expected = student_logits
    r = 4
    swapped = swap_attention(zoo.load_model("tiny-phi3-student"), r=r, alpha=8, embeddings=True)
    assert isinstance(swapped.model.embed_tokens, lora.Embedding)
    swapped.train()  # unmerged: B (or the embedding's A) starts at zero
    with torch.no_grad():
        assert torch.allclose(swapped(input_ids=ids).logits, expected, atol=1e-5)
    lora.mark_only_lora_as_trainable(swapped)
    trainable = {n: p.numel() for n, p in swapped.named_parameters() if p.requires_grad}
    vocab, hidden = swapped.model.embed_tokens.weight.shape
    embedding = sum(v for n, v in trainable.items() if "embed_tokens" in n)
    assert embedding == r * (vocab + hidden)
    assert all("lora_" in n for n in trainable)


def test_a_trained_embedding_update_reaches_a_token_the_projections_cannot():
    # a token's row moves only through the embedding's own update: LoRA on the projections
    # changes how rows are used, never a row itself
    table = torch.nn.Embedding(10, 6)
    layer = embedding_from(table, r=2, alpha=2)
    with torch.no_grad():
        layer.lora_B.normal_()
        layer.lora_A[:, 7] = 1.0  # an update for token 7 only
    layer.train()
    token = torch.tensor([[7]])
    other = torch.tensor([[3]])
    assert not torch.allclose(layer(token), table(token))
    assert torch.allclose(layer(other), table(other))
