"""A small, plain-PyTorch fine-tuning loop for the tone task (completion-only loss).

Used by the zoo's viability check and by labs that train without TRL. The loss is the
cross-entropy of the label token only, so the model learns the answer, not the prompt.
"""

import random
import time
from collections.abc import Callable, Sequence

import torch
from peft import LoraConfig, get_peft_model
from tqdm.auto import tqdm

from slmlab.lexicon import TONES
from slmlab.metrics import build_prompts, label_token_ids

# Phi-3 fuses q/k/v into qkv_proj and gate/up into gate_up_proj.
PHI3_LORA_TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]


def lora_config(r: int = 8, alpha: int = 16, dropout: float = 0.05) -> LoraConfig:
    """LoRA on Phi-3's fused projections (qkv_proj, gate_up_proj) and the others."""
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout,
                      target_modules=PHI3_LORA_TARGETS, task_type="CAUSAL_LM")


def add_lora(model, r: int = 8, alpha: int = 16, dropout: float = 0.0):
    """Wrap `model` with PEFT LoRA adapters on the Phi-3 projections."""
    return get_peft_model(model, lora_config(r, alpha, dropout))


def label_cross_entropy(logits: torch.Tensor, rows: Sequence[dict],
                        label_ids: dict) -> torch.Tensor:
    """The default loss: cross-entropy of each row's tone token over the whole vocabulary."""
    targets = torch.tensor([label_ids[r["tone"]] for r in rows], device=logits.device)
    return torch.nn.functional.cross_entropy(logits, targets)


def run_steps(model, batch_loss: Callable[[random.Random], torch.Tensor], steps: int,
              lr: float, seed: int, desc: str, progress: bool = True,
              after_step: Callable[[int], bool] | None = None) -> dict:
    """AdamW on the trainable parameters for `steps` steps of `batch_loss(rng)`.

    `after_step(step)` runs after each step (1-based); returning True stops training.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, not {steps!r}")
    rng = random.Random(seed)
    torch.manual_seed(seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    model.train()
    losses, start = [], time.perf_counter()
    for _ in tqdm(range(steps), desc=desc, disable=not progress, mininterval=2):
        loss = batch_loss(rng)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)  # one bad batch cannot blow up LoRA
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if after_step is not None and after_step(len(losses)):
            break
    model.eval()
    return {"seconds": round(time.perf_counter() - start, 1), "losses": losses}


def train_on_tone(model, tokenizer, rows: Sequence[dict], steps: int, lr: float = 3e-3,
                  batch_size: int = 16, template: str = "text", seed: int = 0,
                  progress: bool = True, loss_fn: Callable = label_cross_entropy,
                  after_step: Callable[[int], bool] | None = None) -> dict:
    """Train the parameters that require grad to predict each row's tone token.

    `loss_fn(logits, rows, label_ids)` gets the next-token logits at the end of each
    prompt (batch x vocabulary), the batch's rows and {tone: token id}.
    """
    label_ids = dict(zip(TONES, label_token_ids(tokenizer), strict=True))
    tokenizer.padding_side = "left"  # so position -1 is each prompt's last token

    def batch_loss(rng: random.Random) -> torch.Tensor:
        batch_rows = rng.sample(list(rows), min(batch_size, len(rows)))
        prompts = build_prompts(tokenizer, [r["phrase"] for r in batch_rows], template)
        batch = tokenizer(prompts, return_tensors="pt", padding=True,
                          add_special_tokens=False).to(model.device)
        return loss_fn(model(**batch).logits[:, -1, :], batch_rows, label_ids)

    return run_steps(model, batch_loss, steps, lr, seed, "fine-tune", progress, after_step)
