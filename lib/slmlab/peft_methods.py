"""Lab 08: one model per fine-tuning method, trained and measured the same way.

Every method trains the same zoo model on the same tone rows for the same steps with the
course's loop (`tone_tuning.train_on_tone`: loss on the tone token). Peak memory is the
process's resident set size (RSS), sampled every few milliseconds while the model is
built and trained, minus the RSS just before: the same probe for every method.
"""

import functools
import gc
import tempfile
import threading
import time
from collections.abc import Callable

import torch
from peft import (
    IA3Config,
    PrefixTuningConfig,
    PromptTuningConfig,
    get_peft_model,
    prepare_model_for_kbit_training,
)

from slmlab import qlora, tone_tuning, zoo
from slmlab.data import unseen_word_rows
from slmlab.metrics import process_memory_mb, tone_accuracy

# Learning rates that suit each method at this size (full fine-tuning updates every weight,
# soft prompts and IA3 scales move little per step).
LEARNING_RATES = {"full": 1e-3, "lora": 3e-3, "qlora": 3e-3, "ia3": 1e-2,
                  "prompt_tuning": 3e-2, "prefix_tuning": 1e-2}


def peak_rss_mb(fn: Callable[[], object], every_s: float = 0.005) -> tuple[object, float]:
    """Run `fn`; return its result and the peak RSS above the RSS before it, in MB."""
    gc.collect()
    start = peak = process_memory_mb()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process_memory_mb())
            time.sleep(every_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = fn()
    finally:
        done.set()
        sampler.join()
    return result, peak - start


def peft_config(method: str, rank: int = 8):
    """The PEFT config of each parameter-efficient method, on Phi-3's module names."""
    if method in ("lora", "qlora"):
        return tone_tuning.lora_config(rank, alpha=2 * rank, dropout=0.0)
    if method == "ia3":  # scales qkv_proj's output (q, k and v: fused) and down_proj's input
        return IA3Config(task_type="CAUSAL_LM", target_modules=["qkv_proj", "down_proj"],
                         feedforward_modules=["down_proj"])
    if method == "prompt_tuning":  # 8 trainable "virtual token" embeddings before the input
        return PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=8)
    if method == "prefix_tuning":  # trainable keys/values for 8 positions in every layer
        return PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=8)
    raise ValueError(f"no PEFT config for method {method!r}")


def build(method: str, model_id: str, rank: int = 8):
    """The model to train: all weights (full), or a PEFT model; QLoRA on a 4-bit base."""
    if method == "full":
        model, _ = zoo.load(model_id)
        return model
    if method == "qlora":
        model, _ = zoo.load(model_id, quantization_config=qlora.four_bit_config())
        qlora.keep_training_layout(model)  # bitsandbytes CPU bug, see lab 04
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model, _ = zoo.load(model_id)
    return get_peft_model(model, peft_config(method, rank))


@functools.cache
def base_parameter_count(model_id: str) -> int:
    """Parameters of the full-precision base: the denominator of every method's trainable %
    (a 4-bit model counts two weights per stored byte, so it cannot count itself)."""
    return zoo.count_parameters(zoo.load(model_id)[0])


def saved_size_mb(model) -> float:
    """What you would ship: the PEFT adapter files, or the whole model for full FT."""
    with tempfile.TemporaryDirectory() as directory:
        model.save_pretrained(directory)
        return zoo.size_on_disk_mb(directory)  # MB = 1e6 bytes, as everywhere in the course


def run_method(method: str, model_id: str, train_rows, test_rows, steps: int,
               rank: int = 8, batch_size: int = 16, seed: int = 0) -> dict:
    """Build, train and measure one method; the numbers of lab 08's table."""
    tokenizer = zoo.load_tokenizer(model_id)
    torch.manual_seed(seed)

    def build_and_train():
        model = build(method, model_id, rank)
        result = tone_tuning.train_on_tone(model, tokenizer, train_rows, steps,
                                           lr=LEARNING_RATES[method], batch_size=batch_size,
                                           seed=seed, progress=False)
        return model, result

    (model, result), peak_mb = peak_rss_mb(build_and_train)
    trainable = zoo.count_parameters(model, trainable_only=True)
    total = base_parameter_count(model_id)
    unseen = unseen_word_rows(test_rows, train_rows)
    return {
        "trainable_params": trainable,
        "trainable_percent": 100 * trainable / total,
        "peak_memory_mb": peak_mb,
        "seconds_per_step": result["seconds"] / len(result["losses"]),
        "saved_mb": saved_size_mb(model),
        "final_loss": sum(result["losses"][-10:]) / len(result["losses"][-10:]),
        "accuracy": tone_accuracy(model, tokenizer, test_rows, restrict_to_labels=False),
        "unseen_word_accuracy": tone_accuracy(model, tokenizer, unseen,
                                              restrict_to_labels=False),
    }
