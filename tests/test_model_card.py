"""The model card (models/README.md) quotes the shipped build as models/zoo_card.json records it."""

import json
import re

from slmlab import MODELS_DIR, zoo

CARD = (MODELS_DIR / "README.md").read_text(encoding="utf-8")
BUILD = json.loads((MODELS_DIR / "zoo_card.json").read_text())


def table_row(name: str) -> list[str]:
    row = next(line for line in CARD.splitlines() if line.startswith(f"| `{name}` |"))
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_the_model_table_agrees_with_the_zoo_card_and_the_shapes():
    for name, shape in zoo.ZOO.items():
        cells = table_row(name)
        built = BUILD[name]
        assert cells[1].split()[0] == f"{built['parameters']:,}", cells
        assert cells[2] == (f"{shape['num_hidden_layers']} × {shape['hidden_size']}, "
                            f"{shape['intermediate_size']}, {shape['num_attention_heads']}")
        assert cells[3] == f"{BUILD['corpus']['vocab_size']:,}"
        weights_mb = (MODELS_DIR / name / "model.safetensors").stat().st_size / 1e6
        assert cells[4] == f"{weights_mb:.1f} MB"
        assert cells[5] == f"{built['heldout_perplexity']:.2f}"
        assert cells[6] == f"{built['untrained_heldout_perplexity']:.1f}"


def test_the_corpus_figures_agree_with_the_zoo_card():
    corpus = BUILD["corpus"]
    assert f"{corpus['documents']:,} generated documents" in CARD
    assert f"{corpus['heldout_tokens']:,} tokens of held-out" in CARD
    assert re.search(rf"merges at {corpus['vocab_size']:,}\b", CARD)
