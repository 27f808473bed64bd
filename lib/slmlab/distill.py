"""Distillation helpers: a teacher labels and generates data, a student learns from it.

Lab 01 writes the key lines (the KD loss, the soft labels) inline; these helpers do the
batching, sampling and filtering around them.
"""

import json
import random
import re
from collections.abc import Sequence
from pathlib import Path

import torch

from slmlab.lexicon import TONES
from slmlab.task import build_prompts, label_token_ids, last_token_logits

# How the teacher's base model is asked to write new phrases: sentence openings.
SENTENCE_STARTS = ["I feel", "I was", "She was", "He felt", "We were", "They were",
                   "Everyone was", "My friend felt", "After", "Yesterday", "Tom was",
                   "Maria felt", "The children were", "Being"]


def soft_labels(model, tokenizer, phrases: Sequence[str], temperature: float = 1.0,
                template: str = "text") -> torch.Tensor:
    """Teacher's distribution over the four labels (phrases x 4), softened by `temperature`."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, not {temperature}")
    logits = last_token_logits(model, tokenizer, build_prompts(tokenizer, phrases, template))
    label_ids = list(label_token_ids(tokenizer).values())  # in TONES order
    return torch.softmax(logits[:, label_ids] / temperature, dim=-1)


def label_rows(model, tokenizer, phrases: Sequence[str], temperature: float = 1.0) -> list[dict]:
    """Rows {"phrase", "tone", "soft"}: the teacher's hard label and its soft labels."""
    probabilities = soft_labels(model, tokenizer, phrases, temperature)
    return [{"phrase": phrase, "tone": TONES[int(p.argmax())], "soft": p.tolist()}
            for phrase, p in zip(phrases, probabilities, strict=True)]


@torch.no_grad()
def sample_phrases(model, tokenizer, n: int, starts: Sequence[str] = SENTENCE_STARTS,
                   temperature: float = 0.8, seed: int = 0, max_new_tokens: int = 20,
                   batch_size: int = 32) -> list[str]:
    """`n` sentences the model writes after random `starts`, each cut after its first
    sentence end. Sampling (not greedy) gives variety; lower temperature, less junk."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    model.eval()  # the zoo's tokenizer pads on the left: generation continues each start
    phrases: list[str] = []
    while len(phrases) < n:
        prompts = [rng.choice(starts) for _ in range(min(batch_size, n - len(phrases)))]
        batch = tokenizer(prompts, return_tensors="pt", padding=True,
                          add_special_tokens=False).to(model.device)
        output = model.generate(**batch, do_sample=True, temperature=temperature, top_k=50,
                                max_new_tokens=max_new_tokens,
                                pad_token_id=tokenizer.pad_token_id)
        texts = tokenizer.batch_decode(output[:, batch["input_ids"].shape[1]:],
                                       skip_special_tokens=True)
        for start, text in zip(prompts, texts, strict=True):
            sentence = re.split(r"(?<=[.!?])", (start + text).split("\n")[0])[0]
            phrases.append(sentence.strip())
    return phrases


def filter_phrases(phrases: Sequence[str], exclude: Sequence[str] = ()) -> tuple[list, dict]:
    """Keep plausible, new, unique sentences; return them and the count of each rejection.

    A sentence that names a tone word gives the answer away: a student would learn to
    copy words, not to read them, so those go too.
    """
    seen, kept = set(exclude), []
    rejected = {"too short or long": 0, "not a clean sentence": 0, "names a tone": 0,
                "duplicate or known": 0}
    for phrase in phrases:
        words = re.findall(r"[a-z]+", phrase.lower())
        if not 4 <= len(phrase.split()) <= 20:
            rejected["too short or long"] += 1
        elif not re.fullmatch(r"[A-Z][a-z]*( [A-Za-z',]+)*[a-z][.!?]", phrase) or re.search(
                r"[a-z][A-Z]", phrase):
            rejected["not a clean sentence"] += 1
        elif set(words) & set(TONES):
            rejected["names a tone"] += 1
        elif phrase in seen:
            rejected["duplicate or known"] += 1
        else:
            seen.add(phrase)
            kept.append(phrase)
    return kept, rejected


def kd_loss(student_label_logits: torch.Tensor, student_logits: torch.Tensor,
            teacher_probs: torch.Tensor, targets: torch.Tensor, temperature: float,
            alpha: float) -> torch.Tensor:
    """Reference KD loss (lab 01 writes it inline): alpha * T^2 * KL + (1 - alpha) * CE."""
    log_student = torch.log_softmax(student_label_logits / temperature, dim=-1)
    soft = torch.nn.functional.kl_div(log_student, teacher_probs, reduction="batchmean")
    hard = torch.nn.functional.cross_entropy(student_logits, targets)
    return alpha * temperature**2 * soft + (1 - alpha) * hard


def soften(label_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Reference for lab 01's exercise: the teacher's label distribution at a temperature."""
    return torch.softmax(label_logits / temperature, dim=-1)


def save_jsonl(rows: Sequence[dict], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@torch.no_grad()
def temperature_view(teacher, student, tokenizer, phrase: str, temperature: float,
                     alpha: float) -> dict:
    """Lab 01's slider: the teacher's and the student's tone distributions for `phrase` at
    `temperature`, and the KD loss of that one example with the teacher's hard label."""
    prompt = build_prompts(tokenizer, [phrase])
    label_ids = list(label_token_ids(tokenizer).values())  # in TONES order
    teacher_logits = last_token_logits(teacher, tokenizer, prompt)[:, label_ids]
    student_logits = last_token_logits(student, tokenizer, prompt)
    teacher_probs = soften(teacher_logits, temperature)
    hard = torch.tensor([label_ids[int(teacher_logits.argmax())]])
    student_probs = soften(student_logits[:, label_ids], temperature)
    return {"teacher": teacher_probs[0].tolist(), "student": student_probs[0].tolist(),
            "kl": float(torch.nn.functional.kl_div(student_probs.log(), teacher_probs,
                                                   reduction="batchmean")),
            "cross_entropy": float(torch.nn.functional.cross_entropy(student_logits, hard)),
            "temperature_squared": temperature**2,
            "kd_loss": float(kd_loss(student_logits[:, label_ids], student_logits,
                                     teacher_probs, hard, temperature, alpha))}
