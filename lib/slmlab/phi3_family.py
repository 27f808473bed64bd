"""The real Phi-3 family's shapes, for planning and checking without downloading weights.

Published hyper-parameters of the models a learner with a GPU fine-tunes (from each
model's `config.json` on the Hugging Face hub). `skeleton(name)` builds the model on the
meta device: every module with its real shape, no weights, no memory, so parameter
counts and the memory plan (`memory_plan`) come from the architecture itself.
Long-context RoPE scaling factors are left out: they change no shape.
"""

import torch
from transformers import Phi3Config, Phi3ForCausalLM

PHI3_MINI = {"hub_id": "microsoft/Phi-3-mini-4k-instruct",
             "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32,
             "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32064,
             "tie_word_embeddings": False, "max_position_embeddings": 4096,
             "sliding_window": 2047, "rms_norm_eps": 1e-5, "bos_token_id": 1,
             "eos_token_id": 32000, "pad_token_id": 32000}
LONG_CONTEXT = {"max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
                "sliding_window": 262144}
FAMILY: dict[str, dict] = {
    "Phi-3-mini-4k": PHI3_MINI,
    # Phi-3-mini's tokenizer at 14 B: the teacher a Phi-3-mini student can distil from
    # (grouped-query attention: 10 key/value heads)
    "Phi-3-medium-4k": PHI3_MINI | {
        "hub_id": "microsoft/Phi-3-medium-4k-instruct", "hidden_size": 5120,
        "intermediate_size": 17920, "num_hidden_layers": 40, "num_attention_heads": 40,
        "num_key_value_heads": 10},
    "Phi-3.5-mini": PHI3_MINI | LONG_CONTEXT | {"hub_id": "microsoft/Phi-3.5-mini-instruct"},
    # grouped-query attention (8 key/value heads), a 200k vocabulary, tied embeddings
    "Phi-4-mini": PHI3_MINI | LONG_CONTEXT | {
        "hub_id": "microsoft/Phi-4-mini-instruct", "num_attention_heads": 24,
        "num_key_value_heads": 8, "vocab_size": 200064, "tie_word_embeddings": True,
        "partial_rotary_factor": 0.75, "bos_token_id": 199999, "eos_token_id": 199999,
        "pad_token_id": 199999},
}


def config(name: str, **overrides) -> Phi3Config:
    """The Phi3Config of family member `name`; `overrides` change fields (e.g. fewer
    layers or a smaller vocabulary for a test at full width)."""
    if name not in FAMILY:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(FAMILY)}")
    fields = {k: v for k, v in FAMILY[name].items() if k != "hub_id"} | overrides
    return Phi3Config(**fields)


def skeleton(name: str, **overrides) -> Phi3ForCausalLM:
    """Family member `name` on the meta device: its real modules and shapes, no memory."""
    with torch.device("meta"):
        return Phi3ForCausalLM(config(name, **overrides))


def parameter_count(name: str) -> int:
    """All parameters of `name` (embeddings and lm_head included), counted on the skeleton."""
    return sum(p.numel() for p in skeleton(name).parameters())
