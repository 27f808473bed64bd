"""Hyper-parameter search, early stopping and evaluation helpers for lab 07.

The search samples configs and runs lab 03 with papermill (`slmlab.course.run_lab`);
`train_with_validation` is the course's LoRA loop with a validation loss every few steps
and optional early stopping, to make overfitting visible.
"""

import math
import random
from collections.abc import Sequence

import torch

from slmlab.lexicon import TONES
from slmlab.metrics import NOT_A_LABEL, build_prompts, label_token_ids, next_token_logits
from slmlab.tone_tuning import label_cross_entropy, train_on_tone

# The axes the source material tunes: learning rate (log scale), LoRA rank, batch size.
SEARCH_SPACE = {"learning_rate": (1e-3, 1e-2), "rank": [2, 4, 8, 16],
                "batch_size": [8, 16]}


def sample_config(rng: random.Random, space: dict = SEARCH_SPACE) -> dict:
    """One random config: learning rate log-uniform in its range, rank and batch uniform."""
    low, high = space["learning_rate"]
    learning_rate = math.exp(rng.uniform(math.log(low), math.log(high)))
    return {"learning_rate": float(f"{learning_rate:.2e}"), "rank": rng.choice(space["rank"]),
            "batch_size": rng.choice(space["batch_size"])}


def should_stop(val_losses: Sequence[float], patience: int) -> bool:
    """Early stopping: the last `patience` evaluations are all no better than the best before."""
    if len(val_losses) <= patience:
        return False
    best_before = min(val_losses[:-patience])
    return min(val_losses[-patience:]) >= best_before


@torch.no_grad()
def label_loss(model, tokenizer, rows: Sequence[dict]) -> float:
    """Mean cross-entropy of each row's tone token after its prompt (no dropout)."""
    logits = next_token_logits(model, tokenizer, build_prompts(tokenizer,
                                                               [r["phrase"] for r in rows]))
    label_ids = dict(zip(TONES, label_token_ids(tokenizer), strict=True))
    return label_cross_entropy(logits, rows, label_ids).item()


def train_with_validation(model, tokenizer, train_rows: Sequence[dict],
                          val_rows: Sequence[dict], steps: int, eval_every: int,
                          lr: float = 3e-3, batch_size: int = 16, seed: int = 0,
                          patience: int | None = None) -> list[dict]:
    """Train on the tone token; every `eval_every` steps record train and validation loss.

    With `patience`, stop when `should_stop` says so and restore the best weights seen.
    """
    history, best = [], {"loss": math.inf, "state": None}

    def evaluate(step: int) -> bool:
        if step % eval_every:
            return False
        model.eval()
        point = {"step": step, "train_loss": label_loss(model, tokenizer, train_rows),
                 "val_loss": label_loss(model, tokenizer, val_rows)}
        model.train()
        history.append(point)
        if point["val_loss"] < best["loss"]:
            best.update(loss=point["val_loss"], step=step, state={  # the trained weights only
                name: p.detach().clone() for name, p in model.named_parameters()
                if p.requires_grad})
        return patience is not None and should_stop([h["val_loss"] for h in history], patience)

    train_on_tone(model, tokenizer, train_rows, steps, lr=lr, batch_size=batch_size, seed=seed,
                  progress=False, after_step=evaluate)
    if patience is not None and best["state"] is not None:
        model.load_state_dict(best["state"], strict=False)
        history.append({"step": best["step"], "restored_best": True})
    return history


def confusion_matrix(predictions: Sequence[str], targets: Sequence[str],
                     labels: Sequence[str] = TONES) -> list[list[int]]:
    """Counts: one row per true label, one column per predicted label plus "not a label"."""
    columns = [*labels, NOT_A_LABEL]
    matrix = [[0] * len(columns) for _ in labels]
    for predicted, target in zip(predictions, targets, strict=True):
        column = columns.index(predicted) if predicted in columns else len(labels)
        matrix[list(labels).index(target)][column] += 1
    return matrix


def class_weights(rows: Sequence[dict], labels: Sequence[str] = TONES) -> dict[str, float]:
    """Inverse-frequency weights, scaled so that a balanced set gets 1.0 for every class."""
    counts = {label: sum(r["tone"] == label for r in rows) for label in labels}
    return {label: len(rows) / (len(labels) * count) for label, count in counts.items()}
