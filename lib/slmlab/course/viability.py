"""Viability proof of the zoo: are the tiny models plausible bases for fine-tuning?

Measures held-out tone accuracy zero-shot (both models) and after a short LoRA run on
the teacher (lab 03's recipe, `sft.train_adapter`: loaded from the course's cache when a
lab trained it already), on the whole test split and on its rows whose emotion words never
occur in the training split. Each accuracy is given two ways (see `metrics.predict_tones`):
"generated" asks whether the model's own next token is the right label (does it do the
task?), "label-restricted" picks the best of the four label tokens (does it know?).
`python -m slmlab.course.viability` writes the figures to `runs/viability.json`;
`tests/test_viability.py` checks the targets.
"""

import json
import sys

from slmlab import RUNS_DIR, zoo
from slmlab.data import load_tone, unseen_word_rows
from slmlab.metrics import count_parameters, tone_accuracy
from slmlab.sft import train_adapter


def measure(steps: int = 150, r: int = 4, lr: float = 3e-3, seed: int = 0) -> dict:
    """Zero-shot accuracy of each zoo model, then LoRA-tuned teacher accuracy."""
    train, test = list(load_tone("train")), list(load_tone("test"))
    unseen = unseen_word_rows(test, train)
    figures: dict = {"test_rows": len(test), "unseen_word_rows": len(unseen)}
    for name in zoo.ZOO:
        model, tokenizer = zoo.load(name)
        figures[f"{name}_zero_shot_generated"] = tone_accuracy(
            model, tokenizer, test, restrict_to_labels=False)
        figures[f"{name}_zero_shot_label_restricted"] = tone_accuracy(model, tokenizer, test)
    model, tokenizer, info = train_adapter("tiny-phi3-teacher", train, r=r, max_steps=steps,
                                           learning_rate=lr, seed=seed)
    trainable = count_parameters(model, trainable_only=True)
    figures.update(
        lora_steps=steps, lora_rank=r, lora_seconds=info["train_seconds"],
        lora_trainable_percent=100 * trainable / count_parameters(model),
        teacher_lora_test_generated=tone_accuracy(model, tokenizer, test,
                                                  restrict_to_labels=False),
        teacher_lora_test_label_restricted=tone_accuracy(model, tokenizer, test),
        teacher_lora_unseen_words_generated=tone_accuracy(model, tokenizer, unseen,
                                                          restrict_to_labels=False),
    )
    return figures


if __name__ == "__main__":
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 150
    result = measure(steps=steps)
    RUNS_DIR.mkdir(exist_ok=True)
    (RUNS_DIR / "viability.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
