"""Distillation helpers: a teacher labels and generates data, a student learns from it.

Lab 01 writes the key lines (the KD loss, the soft labels) inline; these helpers do the
batching, sampling and filtering around them.
"""

import json
import re
from collections.abc import Sequence
from pathlib import Path

import torch

from slmlab.data import TEXT_TEMPLATE
from slmlab.lexicon import TONES
from slmlab.metrics import build_prompts, label_token_ids, next_token_logits

# What the teacher is prompted with to write a new example: the template's first words.
GENERATION_PROMPT = TEXT_TEMPLATE.split(" {phrase}")[0]  # "### Text:"


def soft_labels(model, tokenizer, phrases: Sequence[str], temperature: float = 1.0,
                template: str = "text") -> torch.Tensor:
    """Teacher's distribution over the four labels (phrases x 4), softened by `temperature`."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, not {temperature}")
    logits = next_token_logits(model, tokenizer, build_prompts(tokenizer, phrases, template))
    return torch.softmax(logits[:, label_token_ids(tokenizer)] / temperature, dim=-1)


def label_rows(model, tokenizer, phrases: Sequence[str], temperature: float = 1.0) -> list[dict]:
    """Rows {"phrase", "tone", "soft"}: the teacher's hard label and its soft labels."""
    probabilities = soft_labels(model, tokenizer, phrases, temperature)
    return [{"phrase": phrase, "tone": TONES[int(p.argmax())], "soft": p.tolist()}
            for phrase, p in zip(phrases, probabilities, strict=True)]


@torch.no_grad()
def sample_phrases(model, tokenizer, n: int, temperature: float = 1.0, seed: int = 0,
                   max_new_tokens: int = 24, batch_size: int = 32) -> list[str]:
    """`n` raw phrases the model writes after "### Text:", each cut at its first newline."""
    torch.manual_seed(seed)
    model.eval()
    prompt = tokenizer(GENERATION_PROMPT, return_tensors="pt", add_special_tokens=False)
    phrases: list[str] = []
    while len(phrases) < n:
        count = min(batch_size, n - len(phrases))
        output = model.generate(
            input_ids=prompt["input_ids"].repeat(count, 1).to(model.device),
            attention_mask=prompt["attention_mask"].repeat(count, 1).to(model.device),
            do_sample=True, temperature=temperature, top_k=50, max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id)
        texts = tokenizer.batch_decode(output[:, prompt["input_ids"].shape[1]:],
                                       skip_special_tokens=True)
        phrases += [text.split("\n")[0].strip() for text in texts]
    return phrases


def filter_phrases(phrases: Sequence[str], exclude: Sequence[str] = ()) -> tuple[list, dict]:
    """Keep plausible, new, unique sentences; return them and the count of each rejection."""
    seen, kept = set(exclude), []
    rejected = {"too short or long": 0, "not a sentence": 0, "duplicate or known": 0}
    for phrase in phrases:
        n_words = len(phrase.split())
        if not 3 <= n_words <= 20:
            rejected["too short or long"] += 1
        elif not re.fullmatch(r"[A-Z][A-Za-z ,':]*[a-z][.!?]", phrase):
            rejected["not a sentence"] += 1
        elif phrase in seen:
            rejected["duplicate or known"] += 1
        else:
            seen.add(phrase)
            kept.append(phrase)
    return kept, rejected


def save_jsonl(rows: Sequence[dict], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path
