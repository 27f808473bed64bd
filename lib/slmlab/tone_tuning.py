"""A small, plain-PyTorch fine-tuning loop for the tone task (completion-only loss).

Used by the zoo's viability check and by labs that train without TRL. The loss is the
cross-entropy of the label token only, so the model learns the answer, not the prompt.
"""

import random
import time
from collections.abc import Sequence

import torch
from peft import LoraConfig, get_peft_model
from tqdm.auto import tqdm

from slmlab.lexicon import TONES
from slmlab.metrics import build_prompts, label_token_ids

# Phi-3 fuses q/k/v into qkv_proj and gate/up into gate_up_proj.
PHI3_LORA_TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]


def add_lora(model, r: int = 8, alpha: int = 16, dropout: float = 0.0,
             targets: Sequence[str] = PHI3_LORA_TARGETS):
    """Wrap `model` with PEFT LoRA adapters on the Phi-3 projections."""
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=list(targets), task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def train_on_tone(model, tokenizer, rows: Sequence[dict], steps: int, lr: float = 3e-3,
                  batch_size: int = 16, template: str = "text", seed: int = 0,
                  progress: bool = True) -> dict:
    """Train the parameters that require grad to predict each row's tone token."""
    if steps < 1 or batch_size < 1:
        raise ValueError("steps and batch_size must be positive integers")
    rng = random.Random(seed)
    torch.manual_seed(seed)
    label_ids = dict(zip(TONES, label_token_ids(tokenizer), strict=True))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    tokenizer.padding_side = "left"
    model.train()
    losses, start = [], time.perf_counter()
    for _ in tqdm(range(steps), desc="fine-tune", disable=not progress, mininterval=2):
        batch_rows = rng.sample(list(rows), min(batch_size, len(rows)))
        prompts = build_prompts(tokenizer, [r["phrase"] for r in batch_rows], template)
        batch = tokenizer(prompts, return_tensors="pt", padding=True,
                          add_special_tokens=False).to(model.device)
        targets = torch.tensor([label_ids[r["tone"]] for r in batch_rows], device=model.device)
        logits = model(**batch).logits[:, -1, :]
        loss = torch.nn.functional.cross_entropy(logits, targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    return {"seconds": round(time.perf_counter() - start, 1), "losses": losses}
