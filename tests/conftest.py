"""Shared fixtures. Zoo models are loaded once per session: they are small but not free."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub here: fail fast, never wait


@pytest.fixture(scope="session")
def teacher():
    from slmlab import zoo

    return zoo.load("tiny-phi3-teacher")


@pytest.fixture(scope="session")
def student():
    from slmlab import zoo

    return zoo.load("tiny-phi3-student")


@pytest.fixture(scope="session")
def tone_rows():
    from slmlab.data import load_tone

    return {split: list(load_tone(split)) for split in ("train", "validation", "test", "pool")}


@pytest.fixture(scope="session")
def student_logits():
    """(input ids, the untouched zoo student's logits for them): what a swap or an adapter
    that starts as the identity must reproduce."""
    import torch

    from slmlab import zoo

    generator = torch.Generator().manual_seed(0)
    model = zoo.load_model("tiny-phi3-student").eval()
    ids = torch.randint(0, model.config.vocab_size, (2, 12), generator=generator)
    with torch.no_grad():
        return ids, model(input_ids=ids).logits
