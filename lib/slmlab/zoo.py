"""The model zoo: tiny Phi-3-architecture models that exist offline.

`load(model_id)` takes a zoo name (`tiny-phi3-teacher`, `tiny-phi3-student`), a local
directory in Hugging Face format, or a hub ID such as `microsoft/Phi-3-mini-4k-instruct`.
Zoo models ship in `models/` (a few MB); `python -m slmlab.pretrain` rebuilds them
from scratch, deterministically.
"""

import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Phi3Config

from slmlab import MODELS_DIR

# Sizes chosen from measurements on 2 CPU cores: within a minutes budget, more
# pretraining steps beat more parameters (see models/README.md).
ZOO: dict[str, dict] = {
    "tiny-phi3-teacher": dict(hidden_size=256, intermediate_size=640, num_hidden_layers=4,
                              num_attention_heads=4, pretrain_steps=1500),
    "tiny-phi3-student": dict(hidden_size=96, intermediate_size=256, num_hidden_layers=2,
                              num_attention_heads=4, pretrain_steps=1500),
}
HUB_PHI3_MINI = "microsoft/Phi-3-mini-4k-instruct"


class ModelNotAvailable(RuntimeError):
    """A model ID that cannot be loaded here, with a one-line reason."""


def phi3_config(name: str, tokenizer) -> Phi3Config:
    """The Phi3Config of zoo model `name`, with the tokenizer's special-token IDs."""
    size = {k: v for k, v in ZOO[name].items() if k != "pretrain_steps"}
    return Phi3Config(
        vocab_size=len(tokenizer),
        num_key_value_heads=size["num_attention_heads"],
        max_position_embeddings=512,
        original_max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,  # as in the real Phi-3
        **size,
    )


def zoo_dir(name: str) -> Path:
    return MODELS_DIR / name


def is_hub_id(model_id: str) -> bool:
    """owner/name, not a path: what `resolve` would fetch from the hub."""
    return "/" in model_id and not model_id.startswith((".", "/", "~")) and model_id.count("/") == 1


def resolve(model_id: str | os.PathLike) -> str:
    """Turn a zoo name, a local directory or a hub ID into what `from_pretrained` takes.

    Raises ModelNotAvailable with one clear line when the model cannot be had here.
    """
    if not isinstance(model_id, (str, os.PathLike)):
        raise TypeError(f"model_id must be a zoo name, a directory or a hub ID, "
                        f"not {type(model_id).__name__}")
    model_id = str(model_id)
    zoo_names = ", ".join(ZOO)
    if model_id in ZOO:
        path = zoo_dir(model_id)
        if not (path / "config.json").exists():
            raise ModelNotAvailable(f"zoo model {model_id!r} is missing from {path}; "
                                    f"run `make zoo` to build it")
        return str(path)
    if Path(model_id).expanduser().is_dir():
        return str(Path(model_id).expanduser())
    if not is_hub_id(model_id):
        raise ModelNotAvailable(f"{model_id!r} is neither a zoo model ({zoo_names}), "
                                f"a local directory, nor a hub ID like {HUB_PHI3_MINI!r}")
    try:  # a hub ID: only usable when its files can be fetched or are cached
        from huggingface_hub import snapshot_download

        return snapshot_download(model_id, allow_patterns=["*.json", "*.safetensors",
                                                           "*.model", "*.jinja", "*.py"])
    except Exception as error:  # noqa: BLE001 - any hub failure means "not here"
        raise ModelNotAvailable(
            f"cannot fetch {model_id!r} from the Hugging Face hub "
            f"({type(error).__name__}); offline, use a zoo model instead: {zoo_names}"
        ) from None


def load_tokenizer(model_id: str | os.PathLike):
    """The tokenizer of `model_id` (zoo name, directory or hub ID), padding on the left:
    every batch of prompts then ends at position -1, where the tone is predicted."""
    tokenizer = AutoTokenizer.from_pretrained(resolve(model_id))
    tokenizer.padding_side = "left"
    return tokenizer


def load_model(model_id: str | os.PathLike, dtype: torch.dtype = torch.float32, **kwargs):
    """The model of `model_id`; extra kwargs go to `from_pretrained`."""
    return AutoModelForCausalLM.from_pretrained(resolve(model_id), dtype=dtype, **kwargs)


def load(model_id: str | os.PathLike, dtype: torch.dtype = torch.float32, **kwargs):
    """(model, tokenizer) for `model_id`; extra kwargs go to `from_pretrained`."""
    return load_model(model_id, dtype, **kwargs), load_tokenizer(model_id)
