"""Fine-tuning methods side by side: one model per method, trained and measured the same way.

Every method trains the same zoo model on the same tone rows for the same steps with the
course's loop (`train_loop.train_on_tone`: loss on the tone token), each in a fresh
process. Peak memory is that process's peak resident set size (RSS) while the model is
built and trained (the kernel's own peak, `peak_memory.peak_rss_mb`), minus the RSS just
before: the same probe for every method.
"""

import json
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch
from peft import get_peft_model, prepare_model_for_kbit_training
from safetensors.torch import save_file

from slmlab import bottleneck, presets, qlora, tools, zoo
from slmlab.data import load_tone, unseen_word_rows
from slmlab.metrics import count_parameters, saved_size_mb, size_on_disk_mb, tone_accuracy
from slmlab.peak_memory import peak_rss_mb
from slmlab.task import build_prompts, last_token_logits
from slmlab.train_loop import train_on_tone

# Learning rates that suit each method at this size (full fine-tuning updates every weight,
# soft prompts and IA3 scales move little per step). Full fine-tuning at 1e-3 spread 83-98 %
# over seeds 0-4 on an AVX512 CPU (its loss jumped about), at 5e-4 94.5-99 %. IA3 and the
# soft prompts want rates 10-30x LoRA's: IA3 at 1e-2 stays near chance after 100 steps.
LEARNING_RATES = {"full": 5e-4, "lora": 3e-3, "qlora": 3e-3, "ia3": 1e-1,
                  "prompt_tuning": 1e-1, "prefix_tuning": 3e-2, "bottleneck": 3e-3}
# The small learning-rate sweep: each method's rate above, a third of it and three times it,
# the best chosen on the validation split (lab 08's `sweep_learning_rates`).
LR_FACTORS = {"low": 1 / 3, "default": 1.0, "high": 3.0}
# a bottleneck of 16 on the zoo teacher trains about as many parameters as LoRA r 4
BOTTLENECK_SIZE = 16


def build(method: str, model_id: str, rank: int = 8):
    """The model to train: all weights (full), or a PEFT model; QLoRA on a 4-bit base."""
    if method == "full":
        return zoo.load_model(model_id)
    if method == "bottleneck":  # not a PEFT config: written by hand (slmlab.bottleneck)
        return bottleneck.add_bottlenecks(zoo.load_model(model_id), BOTTLENECK_SIZE)
    if method == "qlora":
        model = zoo.load_model(model_id, quantization_config=presets.four_bit_config())
        qlora.keep_training_layout(model)  # bitsandbytes CPU bug, see lab 04
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model = zoo.load_model(model_id)
    return get_peft_model(model, presets.peft_config(method, rank))


def top_answers(model, tokenizer, rows, k: int = 3) -> list[list]:
    """The model's `k` most frequent greedy next tokens after the prompts of `rows`, with
    their counts: what a method that scores no label answers instead."""
    logits = last_token_logits(model, tokenizer,
                               build_prompts(tokenizer, [r["phrase"] for r in rows]))
    counts = Counter(tokenizer.decode([i]) for i in logits.argmax(-1).tolist())
    return [[token, count] for token, count in counts.most_common(k)]


def measure(model, run: dict, peak_mb: float, tokenizer, base_parameters: int, train_rows,
            test_rows, validation_rows=()) -> dict:
    """One row of lab 08's table, for a model `train_on_tone` trained (`run`) while
    `peak_rss_mb` watched (`peak_mb`). `base_parameters`: the full-precision base's count,
    the denominator of every method's trainable % (a 4-bit model counts two weights per
    stored byte, so it cannot count itself)."""
    trainable = count_parameters(model, trainable_only=True)
    unseen = unseen_word_rows(test_rows, train_rows)
    return {
        "trainable_params": trainable,
        "trainable_percent": 100 * trainable / base_parameters,
        "peak_memory_mb": peak_mb,
        "seconds_per_step": run["seconds"] / len(run["losses"]),
        "saved_mb": _shipped_mb(model),
        "final_loss": sum(run["losses"][-10:]) / len(run["losses"][-10:]),
        "losses": run["losses"],
        "accuracy": tone_accuracy(model, tokenizer, test_rows, restrict_to_labels=False),
        "unseen_word_accuracy": tone_accuracy(model, tokenizer, unseen,
                                              restrict_to_labels=False),
        # phrases from another hand than the generator (data/README.md)
        "wild_accuracy": tone_accuracy(model, tokenizer, load_tone("wild"),
                                       restrict_to_labels=False),
        "top_answers": top_answers(model, tokenizer, test_rows),
        **({"validation_accuracy": tone_accuracy(model, tokenizer, validation_rows,
                                                 restrict_to_labels=False)}
           if validation_rows else {}),
    }


def _shipped_mb(model) -> float:
    """What you would ship: a PEFT adapter or whole model (`save_pretrained`), or only the
    bottleneck adapters' tensors."""
    adapters = bottleneck.adapter_state_dict(model)
    if not adapters:
        return saved_size_mb(model)
    with tempfile.TemporaryDirectory() as directory:
        save_file(adapters, Path(directory) / "adapters.safetensors")
        return size_on_disk_mb(directory)


def run_method(method: str, model_id: str, base_parameters: int, train_rows, test_rows,
               steps: int, rank: int = 8, batch_size: int = 16, seed: int = 0,
               learning_rate: float | None = None, validation_rows=(),
               curve_steps: Sequence[int] = ()) -> dict:
    """Build, train and measure one method in a fresh Python process: lab 08's table row,
    at `learning_rate` (default: the method's in LEARNING_RATES), with the accuracy on
    `validation_rows` when given (what a learning-rate sweep chooses on). `curve_steps`
    adds "curve": validation and test accuracy after each of those steps of the same run
    (a steps-to-accuracy curve; the loop's learning rate is constant, so the point at step
    n is what a run of n steps gives).

    A process that trained one method keeps its freed heap and reuses it for the next, so
    in one process the order decides the memory figures (measured here: LoRA r 4 peaked
    at 155 MB above start alone, 35 MB after full fine-tuning in the same process). A
    fresh process per method measures every method the same way: `python -m
    slmlab.peft_methods`, forked from a process that imported torch, transformers and PEFT
    once (`tools.run_python`; a new interpreter per method cost ~10 s of imports each),
    never from the caller, whose heap it would copy. A method that fails
    raises ToolError with the last line of its log, which is kept.
    """
    folder = Path(tempfile.mkdtemp(prefix="slmlab-method-"))
    request, row = folder / "request.json", folder / "row.json"
    request.write_text(json.dumps({
        "method": method, "model_id": model_id, "base_parameters": base_parameters,
        "train_rows": list(train_rows), "test_rows": list(test_rows), "steps": steps,
        "rank": rank, "batch_size": batch_size, "seed": seed,
        # an unknown method fails in its process, which says why (its log is kept)
        "learning_rate": learning_rate or LEARNING_RATES.get(method),
        "validation_rows": list(validation_rows), "curve_steps": list(curve_steps)}))
    tools.run_python([sys.executable, "-m", __name__, str(request), str(row)],
                     folder / "method.log", f"lab 08's {method} run")
    result = json.loads(row.read_text())
    shutil.rmtree(folder)  # a failed run's folder stays: its log is named in the error
    return result


def _run_here(method: str, model_id: str, base_parameters: int, train_rows: list,
              test_rows: list, steps: int, rank: int, batch_size: int, seed: int,
              learning_rate: float, validation_rows: list, curve_steps: list) -> dict:
    # this process writes to a log nobody reads unless it fails: no progress bars there
    import datasets
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging

    logging.disable_progress_bar()
    disable_progress_bars()
    datasets.disable_progress_bars()  # "Generating train split" the first time a split loads
    tokenizer = zoo.load_tokenizer(model_id)
    torch.manual_seed(seed)
    curve = []

    def build_and_train():
        model = build(method, model_id, rank)

        def measure_step(step: int) -> bool:
            if step in curve_steps:
                model.eval()
                curve.append({"step": step, "validation_accuracy": tone_accuracy(
                    model, tokenizer, validation_rows, restrict_to_labels=False),
                    "accuracy": tone_accuracy(model, tokenizer, test_rows,
                                              restrict_to_labels=False)})
                model.train()
            return False

        run = train_on_tone(model, tokenizer, train_rows, steps, lr=learning_rate,
                            batch_size=batch_size, seed=seed, progress=False,
                            evaluate=measure_step if curve_steps else None)
        return model, run

    (model, run), peak_mb = peak_rss_mb(build_and_train)
    return {"learning_rate": learning_rate, **({"curve": curve} if curve_steps else {}),
            **measure(model, run, peak_mb, tokenizer, base_parameters, train_rows, test_rows,
                      validation_rows)}


if __name__ == "__main__":  # python -m slmlab.peft_methods REQUEST.json ROW.json (run_method)
    arguments = json.loads(Path(sys.argv[1]).read_text())
    Path(sys.argv[2]).write_text(json.dumps(_run_here(**arguments)))
