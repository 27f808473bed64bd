"""The course's own training loop for the tone task, in plain PyTorch.

The course trains two ways, on purpose. Labs 03-06 and 07's search and custom loss teach
the Hugging Face path (TRL's SFTTrainer: checkpoints, resume, logging, callbacks), which is
how Phi-3 is fine-tuned at scale. This loop serves what a trainer hides or does not take:
a KD loss over the teacher's label distribution (lab 01), loralib layers PEFT does not
know (02), a validation loss every few steps with early stopping (07), six PEFT methods
trained and measured by one probe (08). Its loss is the cross-entropy of the label token
after the prompt only, so the model learns the answer, not the prompt.
"""

import math
import random
import time
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from slmlab.presets import flush_denormals
from slmlab.task import build_prompts, label_token_ids, last_token_logits


def label_cross_entropy(logits: torch.Tensor, rows: Sequence[dict],
                        label_ids: dict[str, int]) -> torch.Tensor:
    """The default loss: cross-entropy of each row's tone token over the whole vocabulary."""
    targets = torch.tensor([label_ids[r["tone"]] for r in rows], device=logits.device)
    return torch.nn.functional.cross_entropy(logits, targets)


def train_on_tone(model, tokenizer, rows: Sequence[dict], steps: int, lr: float = 3e-3,
                  batch_size: int = 16, template: str = "text", seed: int = 0,
                  progress: bool = True, loss_fn: Callable = label_cross_entropy,
                  evaluate: Callable[[int], bool] | None = None) -> dict:
    """AdamW on the parameters that require grad, to predict each row's tone token.

    `loss_fn(logits, rows, label_ids)` gets the next-token logits at the end of each
    prompt (batch x vocabulary), the batch's rows and {tone: token id}. `evaluate(step)`,
    if given, runs after each step (1-based); True stops. The model stays in train mode
    throughout (an evaluation switches to eval and back itself): loralib layers merge their
    update into the weight on eval() and take it out on train(), which rounds the weight.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, not {steps!r}")
    flush_denormals()  # a collapsing run otherwise slows down ~3x (see presets)
    label_ids, rows = label_token_ids(tokenizer), list(rows)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    losses, start = [], time.perf_counter()
    model.train()
    for step in tqdm(range(1, steps + 1), desc="fine-tune", disable=not progress,
                     mininterval=2):
        batch_rows = rng.sample(rows, min(batch_size, len(rows)))
        prompts = build_prompts(tokenizer, [r["phrase"] for r in batch_rows], template)
        batch = tokenizer(prompts, return_tensors="pt", padding=True,
                          add_special_tokens=False).to(model.device)
        # logits_to_keep=1: only the answer position goes through the vocabulary head
        loss = loss_fn(model(**batch, logits_to_keep=1).logits[:, -1, :], batch_rows, label_ids)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)  # one bad batch cannot blow up LoRA
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if evaluate is not None and evaluate(step):
            break
    model.eval()
    return {"seconds": round(time.perf_counter() - start, 1), "losses": losses}


@torch.no_grad()
def label_loss(model, tokenizer, rows: Sequence[dict]) -> float:
    """Mean cross-entropy of each row's tone token after its prompt (no dropout)."""
    logits = last_token_logits(model, tokenizer,
                               build_prompts(tokenizer, [r["phrase"] for r in rows]))
    return label_cross_entropy(logits, rows, label_token_ids(tokenizer)).item()


def should_stop(val_losses: Sequence[float], patience: int) -> bool:
    """Early stopping: the last `patience` evaluations are all no better than the best before."""
    if len(val_losses) <= patience:
        return False
    best_before = min(val_losses[:-patience])
    return min(val_losses[-patience:]) >= best_before


def train_with_validation(model, tokenizer, train_rows: Sequence[dict],
                          val_rows: Sequence[dict], steps: int, eval_every: int,
                          lr: float = 3e-3, batch_size: int = 16, seed: int = 0,
                          patience: int | None = None, stop: bool = True) -> list[dict]:
    """Train on the tone token; every `eval_every` steps, and after the last, record train
    and validation loss.

    With `patience`, stop when `should_stop` says so and restore the best weights seen.
    With `patience` and `stop=False`, train every step anyway and append where early
    stopping would have stopped: {"step", "would_stop": True, "best_step", "best_state"
    (the trained weights then)}. The run is the same up to that step, so one run gives
    both the early-stopped model and the one trained to the end.
    """
    history, best = [], {"loss": math.inf, "state": None}
    stopped: dict = {}

    def evaluate(step: int) -> bool:
        if step % eval_every and step != steps:  # the end is always measured (steps < eval_every)
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
        if stopped or patience is None or not should_stop([h["val_loss"] for h in history],
                                                          patience):
            return False
        stopped.update(step=step, would_stop=True, best_step=best["step"],
                       best_state=best["state"])
        return stop

    train_on_tone(model, tokenizer, train_rows, steps, lr=lr, batch_size=batch_size, seed=seed,
                  progress=False, evaluate=evaluate)
    if patience is not None and not stop:
        if stopped:
            history.append(stopped)
    elif patience is not None and best["state"] is not None:
        model.load_state_dict(best["state"], strict=False)
        history.append({"step": best["step"], "restored_best": True})
    return history
