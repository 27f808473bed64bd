"""Supervised fine-tuning with TRL (LoRA on Phi-3): a CPU-sane SFTConfig, the trainer, a
cached adapter and a script.

`python -m slmlab.sft --model-id tiny-phi3-teacher --output-dir runs/sft` trains a LoRA
adapter with TRL's SFTTrainer on the tone data. The same file runs on several GPUs:
`accelerate launch --config_file accelerate_fsdp.yaml -m slmlab.sft --model-id
microsoft/Phi-3-mini-4k-instruct --bf16 ...` (see README, "Scale-out").
"""

import argparse
import contextlib
import hashlib
import json
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import torch
import trl.trainer.utils as trl_utils
from datasets import Dataset
from peft import PeftModel
from transformers import TrainerCallback, set_seed
from trl import SFTConfig, SFTTrainer

from slmlab import artifact_cache, presets, resume, saving, task, zoo
from slmlab.data import load_tone
from slmlab.presets import LORA_DROPOUT, lora_config


def score_labelled_positions_only() -> None:
    """Make TRL's fused LM head project only the answer positions on the CPU as well.

    SFTTrainer's loss head (`trl_utils.add_fused_lm_head`) skips the positions whose label
    is -100 only where Triton runs (CUDA/XPU): elsewhere it keeps every position so that
    compiled tile shapes stay fixed. On the CPU nothing is compiled, and with
    `completion_only_loss` the answer is 2 of ~35 tokens of a tone example, so it projected
    ~17x more rows through the vocabulary than the loss uses (~16 % of a step; same loss).
    Called once, when this module is imported: every SFTTrainer in the course gets it.
    A TRL without this switch keeps its own behaviour (tests/test_sft.py then says so).
    """
    decide = getattr(trl_utils, "_use_triton", None)
    if decide is None or getattr(decide, "slmlab_cpu", False):
        return

    def compact_on_cpu(device: torch.device) -> bool:
        return device.type == "cpu" or decide(device)

    compact_on_cpu.slmlab_cpu = True
    trl_utils._use_triton = compact_on_cpu


score_labelled_positions_only()


def gpu_bf16() -> bool:
    """bf16 where a CUDA GPU supports it (the real model's training dtype); fp32 on a CPU."""
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def sft_dataset(rows, template: str = "text") -> Dataset:
    """Prompt/completion rows (`task.examples`); TRL computes the loss on the completion only."""
    return Dataset.from_list(task.examples(list(rows), template))


def sft_config(output_dir: str | Path, max_steps: int = 150, learning_rate: float = 3e-3,
               batch_size: int = 16, bf16: bool = False, **overrides) -> SFTConfig:
    """SFTConfig with every CPU-relevant choice written out (TRL's defaults target GPUs)."""
    settings = dict(
        output_dir=str(output_dir), max_steps=max_steps, learning_rate=learning_rate,
        per_device_train_batch_size=batch_size, per_device_eval_batch_size=32,
        max_length=128,                 # tone examples are < 60 tokens
        completion_only_loss=True,      # learn the answer, not the prompt
        bf16=bf16,                      # fp32 on CPU; bf16 on a recent GPU
        gradient_checkpointing=False,   # TRL's default (True) trades speed for memory
        use_cpu=not torch.cuda.is_available(),
        optim="adamw_torch", lr_scheduler_type="constant", warmup_steps=0,
        logging_steps=10, eval_strategy="steps", eval_steps=50,
        save_strategy="steps", save_steps=50, save_total_limit=2,
        report_to="tensorboard", disable_tqdm=False, seed=0, dataloader_num_workers=0,
    )
    settings.update(overrides)
    return SFTConfig(**settings)


class StopAfter(TrainerCallback):
    """Ends training after `step` steps, as a killed run would (lab 03's resume demo)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_save = True
            control.should_training_stop = True


def build_trainer(model_id: str, output_dir: str | Path, template: str = "text",
                  r: int = 8, alpha: int = 16, dropout: float = LORA_DROPOUT, model=None,
                  train_rows=None, trainer_class: type[SFTTrainer] = SFTTrainer,
                  **config) -> SFTTrainer:
    """An SFTTrainer for LoRA with the tone train (or `train_rows`) and validation splits.

    Loads `model_id`, unless a ready `model` (e.g. a 4-bit one, lab 04) is passed;
    `trainer_class` may be an SFTTrainer subclass (lab 07's custom loss). Every training
    setting goes through `**config` into `sft_config`: new options need no new parameter.
    """
    tokenizer = zoo.load_tokenizer(model_id)
    if model is None:
        model = zoo.load_model(model_id, dtype=torch.bfloat16 if config.get("bf16")
                               else torch.float32)
    model.config.use_cache = False  # the KV cache is useless in training and costs memory
    return trainer_class(
        model=model, args=sft_config(output_dir, **config),
        train_dataset=sft_dataset(load_tone("train") if train_rows is None else train_rows,
                                  template),
        eval_dataset=sft_dataset(load_tone("validation"), template),
        processing_class=tokenizer, peft_config=lora_config(r, alpha, dropout),
    )


def recipe_key(model_id: str, rows: list, r: int, max_steps: int, learning_rate: float,
               batch_size: int, seed: int) -> str:
    """The cache key of lab 03's recipe trained with these settings (`train_adapter`)."""
    settings = {"recipe": "sft.train_adapter", "r": r, "alpha": 2 * r, "dropout": LORA_DROPOUT,
                "max_steps": max_steps, "learning_rate": learning_rate,
                "batch_size": batch_size, "seed": seed, "bf16": gpu_bf16(),
                # the training code too: a changed preset (sft_config here, the LoRA targets
                # and the CPU's float mode in presets) must not reuse old adapters
                "code": hashlib.sha256(b"".join(Path(f).read_bytes() for f in (
                    __file__, presets.__file__))).hexdigest()}
    return artifact_cache.cache_key(zoo.resolve(model_id), rows, settings)


def train_adapter(model_id: str, rows=None, *, r: int = 4, max_steps: int = 150,
                  learning_rate: float = 3e-3, batch_size: int = 16, seed: int = 0,
                  use_cache: bool = True, cache_dir: Path | None = None):
    """(PEFT model, tokenizer, info) for lab 03's recipe: LoRA r, alpha 2r, text template.

    The same call in labs 01 and 04-06 trains once: the adapter is stored in the
    content-addressed cache (`artifact_cache`) and loaded by the next lab with the same
    model files, rows, settings, training code and library versions (lab 03 stores the one
    it trains itself: `share_adapter`). `info["source"]` says which happened;
    `info["train_seconds"]` is the original training time either way.
    """
    rows = list(load_tone("train") if rows is None else rows)
    key = recipe_key(model_id, rows, r, max_steps, learning_rate, batch_size, seed)
    cache_dir = Path(cache_dir or artifact_cache.CACHE_DIR)
    with artifact_cache.one_builder(key, cache_dir) if use_cache else contextlib.nullcontext():
        return _load_or_train(model_id, rows, key, cache_dir, use_cache, r=r, max_steps=max_steps,
                              learning_rate=learning_rate, batch_size=batch_size, seed=seed)


# SFTConfig fields that decide the trained weights (logging, evaluation and checkpoints do not)
WEIGHT_SETTINGS = ("learning_rate", "per_device_train_batch_size", "max_steps", "seed", "bf16",
                   "fp16", "use_cpu", "optim", "lr_scheduler_type", "warmup_steps",
                   "weight_decay", "gradient_accumulation_steps", "max_grad_norm", "max_length",
                   "completion_only_loss")
PEFT_SETTINGS = ("r", "lora_alpha", "lora_dropout", "target_modules", "bias", "task_type")


def share_adapter(trainer: SFTTrainer, model_id: str, rows: Iterable[dict],
                  examples: Iterable[dict], train_seconds: float,
                  cache_dir: Path | None = None) -> Path | None:
    """Store an adapter trained outside `train_adapter` (lab 03's, killed and resumed) in the
    cache under the key `train_adapter` computes, when its run is that recipe: same LoRA
    config, weight-deciding settings and training examples. Lab 03's run then spares labs 01
    and 04-06 training it again. Returns the entry, or None (and why) when it differs."""
    args, peft, rows = trainer.args, trainer.model.peft_config["default"], list(rows)
    reference = sft_config(tempfile.gettempdir(), args.max_steps, args.learning_rate,
                           args.per_device_train_batch_size, gpu_bf16(), seed=args.seed)
    peft_reference = lora_config(peft.r, 2 * peft.r, LORA_DROPOUT)
    differences = [f for f in WEIGHT_SETTINGS if getattr(args, f) != getattr(reference, f)]
    differences += [f"LoRA {f}" for f in PEFT_SETTINGS
                    if getattr(peft, f) != getattr(peft_reference, f)]
    if list(examples) != task.examples(rows, "text"):
        differences.append("training examples")
    if trainer.state.global_step != args.max_steps:
        differences.append(f"steps trained ({trainer.state.global_step})")
    if differences:
        print("adapter not shared through the cache: not sft.train_adapter's recipe "
              f"({', '.join(differences)} differ)")
        return None
    cache_dir = Path(cache_dir or artifact_cache.CACHE_DIR)
    key = recipe_key(model_id, rows, peft.r, args.max_steps, args.learning_rate,
                     args.per_device_train_batch_size, args.seed)
    with artifact_cache.one_builder(key, cache_dir):
        entry = (artifact_cache.lookup(key, cache_dir)
                 or _store(trainer, _info(trainer, key, train_seconds), cache_dir))
    print(f"adapter shared through the course's cache ({key}): labs 01 and 04-06 load it")
    return entry


def _load_or_train(model_id: str, rows: list, key: str, cache_dir: Path, use_cache: bool, *,
                   r: int, max_steps: int, learning_rate: float, batch_size: int, seed: int):
    entry = artifact_cache.lookup(key, cache_dir) if use_cache else None
    if entry is not None:
        model, tokenizer = zoo.load(model_id, dtype=torch.bfloat16 if gpu_bf16() else torch.float32)
        if torch.cuda.is_available():  # where a freshly trained one would be
            model = model.to("cuda")
        # is_trainable: its LoRA weights count as trainable, as a freshly trained model's do
        # (lab 07's sweep table read 0 % trainable for every trial the cache served)
        model = PeftModel.from_pretrained(model, str(entry / "adapter"), is_trainable=True).eval()
        info = json.loads((entry / "info.json").read_text()) | {"source": f"cache {entry}"}
        print(f"LoRA adapter loaded from the cache ({entry.name}): trained earlier with the "
              f"same model, data and settings in {info['train_seconds']} s")
        return model, tokenizer, info
    set_seed(seed)  # LoRA's initial weights too: the result depends on the key alone
    with tempfile.TemporaryDirectory() as scratch:
        trainer = build_trainer(model_id, scratch, r=r, alpha=2 * r, train_rows=rows,
                                max_steps=max_steps, learning_rate=learning_rate,
                                batch_size=batch_size, seed=seed, bf16=gpu_bf16(),
                                save_strategy="no",
                                eval_strategy="no", report_to="none")
        result = trainer.train()
    info = _info(trainer, key, result.metrics["train_runtime"])
    if use_cache:
        _store(trainer, info, cache_dir)
    print(f"LoRA adapter trained in {info['train_seconds']} s"
          + (f" and stored in the cache ({key})" if use_cache else ""))
    model = trainer.model.eval()
    model.config.use_cache = True  # as a loaded model has it: generation needs the KV cache
    return model, trainer.processing_class, info | {"source": "trained"}


def _info(trainer: SFTTrainer, key: str, train_seconds: float) -> dict:
    return {"train_seconds": round(train_seconds, 1), "key": key,
            "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h]}


def _store(trainer: SFTTrainer, info: dict, cache_dir: Path) -> Path:
    """The trained adapter and its `info` as the cache entry `info["key"]`."""
    def write(folder: Path) -> None:
        trainer.model.save_pretrained(folder / "adapter")
        (folder / "info.json").write_text(json.dumps(info, indent=2))

    return artifact_cache.store(info["key"], write, cache_dir)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="LoRA SFT of a Phi-3 model on tone data")
    parser.add_argument("--model-id", default="tiny-phi3-teacher")
    parser.add_argument("--output-dir", default="runs/sft")
    parser.add_argument("--template", choices=["text", "chat"], default="text")
    parser.add_argument("--max-steps", type=int, default=150)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--save-steps", type=int, default=50, help="checkpoint every N steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true",
                        help="continue from the last complete checkpoint")
    args = parser.parse_args(argv)
    set_seed(args.seed)  # the adapter's initial weights too: a rerun starts where this one did
    trainer = build_trainer(args.model_id, args.output_dir, args.template, r=args.rank,
                            alpha=2 * args.rank, max_steps=args.max_steps,
                            learning_rate=args.learning_rate, batch_size=args.batch_size,
                            bf16=args.bf16, save_steps=args.save_steps, seed=args.seed)
    # the newest checkpoint written to the end: a run killed mid-save leaves a partial one
    checkpoint = resume.resume_point(args.output_dir) if args.resume else None
    try:
        result = trainer.train(resume_from_checkpoint=checkpoint)
    except OSError as error:  # a checkpoint could not be written (disk full, not writable)
        kept = resume.last_complete_checkpoint(args.output_dir)
        raise saving.SaveError(
            f"training stopped at step {trainer.state.global_step}: could not write to "
            f"{args.output_dir} ({error.strerror or error}); last complete checkpoint: "
            f"{kept or 'none'}; free space, then rerun with --resume") from None
    with saving.replace_atomically(Path(args.output_dir) / "adapter") as staging:
        trainer.save_model(str(staging))
    summary = {"global_step": result.global_step, "train_loss": result.training_loss,
               "runtime_s": result.metrics["train_runtime"], "resumed_from": checkpoint}
    if trainer.is_world_process_zero():
        saving.write_json(Path(args.output_dir, "train_summary.json"), summary)
    return summary


if __name__ == "__main__":
    try:
        main()
    except saving.SaveError as error:  # one line for the learner, not a traceback
        sys.exit(str(error))
