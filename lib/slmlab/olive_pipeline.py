"""Running Olive offline on CPU, and the course's completion-only data step for it.

Lab 06 writes its Olive config inline; this module runs the `olive` command with the
environment it needs and explains failures. It is also the `user_script` Olive loads for
`tone_completion_pre_process`, which puts the loss on the tone only (as lab 03's
SFTTrainer does); Olive's own text pre-processing puts it on the whole text.

Olive 0.13's ModelBuilder pass calls the builder API of onnxruntime-genai <= 0.14.1 (the
course pins 0.18 for generation). `make setup` installs a builder-only copy of 0.14.1
into `.venv/olive-builder`; `run_olive` puts it first on the `sys.path` of Olive's process
(and on its PYTHONPATH, for what Olive starts).
"""

import os
import sys
from pathlib import Path

from slmlab import tools
from slmlab.presets import LORA_DROPOUT, PHI3_LORA_TARGETS
from slmlab.task import TEXT_TEMPLATE

BUILDER_DIR = Path(sys.prefix) / "olive-builder"
IGNORE_INDEX = -100  # label value the loss skips (PyTorch's cross-entropy default)


def olive_variables(builder_dir: Path = BUILDER_DIR) -> dict[str, str]:
    """The variables an offline Olive run needs: no telemetry, no hub, the 0.14.1 builder."""
    if not (builder_dir / "onnxruntime_genai").is_dir():
        raise FileNotFoundError(f"Olive's model builder copy is missing ({builder_dir}): "
                                "run `make setup`")
    # Olive 0.13 queues a telemetry heartbeat *before* it reads OLIVE_DISABLE_TELEMETRY
    # (unless a CI variable is set), and at exit retries sending it: offline, every command
    # then sat idle ~6-8 s. OTEL_SDK_DISABLED turns its OpenTelemetry logger into a no-op.
    python_path = os.pathsep.join(p for p in (str(builder_dir), os.environ.get("PYTHONPATH"))
                                  if p)
    return {"OLIVE_DISABLE_TELEMETRY": "1", "OTEL_SDK_DISABLED": "true",
            "HF_HUB_OFFLINE": "1", "PYTHONPATH": python_path}


def olive_env(builder_dir: Path = BUILDER_DIR) -> dict[str, str]:
    """This process's environment with `olive_variables`: for an `olive` subprocess."""
    return dict(os.environ, **olive_variables(builder_dir))


def run_olive(args: list[str], log_path: str | Path, cwd: str | Path | None = None,
              seed: int = 0) -> float:
    """Run `olive ARGS` (as `python -m slmlab.olive_offline ARGS`: Olive without its
    telemetry wait), log to `log_path`; return seconds, or raise ToolError (one line).

    Its random generators start from `seed`: Olive's LoRA pass draws the adapter's initial
    weights before its trainer seeds, from whatever state the process is in (unseeded, its
    INT4 accuracy spread 87.5-98.5 % over 13 runs of lab 06)."""
    return tools.run_python([sys.executable, "-m", "slmlab.olive_offline", *args], log_path,
                            f"olive {args[0]}", cwd=cwd, seed=seed,
                            variables=olive_variables(), python_path=(str(BUILDER_DIR),))


def training_losses(log_path: str | Path) -> list[float]:
    """The `'loss': ...` values the Hugging Face trainer printed into an Olive log."""
    import re

    return [float(v) for v in re.findall(r"'loss': '?([0-9.]+)", Path(log_path).read_text())]


def checkpoint_curve(model_id: str, checkpoint_dir: str | Path,
                     rows: list[dict]) -> dict[int, float]:
    """{step: tone accuracy on `rows`} of every `checkpoint-STEP` adapter a trainer saved
    in `checkpoint_dir` (Olive's LoRA pass given `output_dir` and `save_steps`), each
    loaded onto the base in PyTorch: a learning curve from one run."""
    from peft import PeftModel

    from slmlab import zoo
    from slmlab.metrics import tone_accuracy

    tokenizer = zoo.load_tokenizer(model_id)
    curve = {}
    for folder in Path(checkpoint_dir).glob("checkpoint-*"):
        model = PeftModel.from_pretrained(zoo.load_model(model_id), folder)
        curve[int(folder.name.split("-")[1])] = tone_accuracy(model, tokenizer, rows,
                                                              restrict_to_labels=False)
    return dict(sorted(curve.items()))


def steps_to_reach(curve: dict[int, float], level: float) -> int | None:
    """The first step whose accuracy is at least `level`, or None if none is."""
    return next((step for step, accuracy in curve.items() if accuracy >= level), None)


def lora_passes(r: int, steps: int, lr: float = 3e-3, batch_size: int = 16, seed: int = 0,
                train_data: str = "tone_train", pass_type: str = "LoRA",
                precision: str = "int4") -> dict:
    """Olive passes: LoRA (or QLoRA) -> merge the adapter -> ModelBuilder, CPU settings."""
    return {
        # lab 03's recipe, said explicitly: Olive's default dropout is 0.05
        "lora": {"type": pass_type, "r": r, "alpha": 2 * r, "lora_dropout": LORA_DROPOUT,
                 "target_modules": list(PHI3_LORA_TARGETS), "torch_dtype": "float32",
                 "train_data_config": train_data,
                 "training_args": {"max_steps": steps, "learning_rate": lr, "seed": seed,
                                   "per_device_train_batch_size": batch_size,
                                   "lr_scheduler_type": "constant", "logging_steps": 25,
                                   "gradient_checkpointing": False}},
        "merge": {"type": "MergeAdapterWeights"},
        "builder": {"type": "ModelBuilder", "precision": precision,
                    "extra_options": {"int4_block_size": 32, "int4_accuracy_level": 4,
                                      "hf_token": "false"}},
    }


def completion_only_example(tokenizer, row: dict, max_seq_len: int,
                            text_template: str = TEXT_TEMPLATE, answer_col: str = "tone") -> dict:
    """Prompt + answer + end token, cut at `max_seq_len`; labels are IGNORE_INDEX except on
    the answer. Not padded: Olive's LoRA trainer pads each batch to its longest row
    (`collate_batch`): rows padded to 48 here made its batches ~17 % longer."""
    prompt = text_template.split("{" + answer_col + "}")[0].format(**row)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(row[answer_col], add_special_tokens=False)["input_ids"]
    answer_ids.append(tokenizer.eos_token_id)
    ids = (prompt_ids + answer_ids)[:max_seq_len]
    return {"input_ids": ids, "attention_mask": [1] * len(ids),
            "labels": ([IGNORE_INDEX] * len(prompt_ids) + answer_ids)[:max_seq_len]}


try:  # registered when Olive imports this file as a user_script (and when olive is installed)
    from olive.data.registry import Registry
except ImportError:  # pragma: no cover - olive-ai is in requirements.txt
    Registry = None

if Registry is not None:
    @Registry.register_pre_process()
    def tone_completion_pre_process(dataset, model_name: str, max_seq_len: int = 64,
                                    text_template: str = TEXT_TEMPLATE,
                                    answer_col: str = "tone", **kwargs):
        """Olive pre-process component: rows -> examples with the loss on the answer only."""
        from datasets import Dataset
        from olive.data.component.dataset import ClassificationDataset
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_name)
        examples = [completion_only_example(tokenizer, row, max_seq_len, text_template,
                                            answer_col) for row in dataset]
        data = Dataset.from_list(examples)
        data.set_format("torch", output_all_columns=True)
        return ClassificationDataset(data, "labels")
