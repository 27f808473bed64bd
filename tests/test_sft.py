"""The SFT script: runs under `accelerate launch` (one CPU process here) and resumes."""

import json
import time

import pytest
import torch
from trl import SFTTrainer

from slmlab import REPO_ROOT
from slmlab.sft import sft_config, sft_dataset


def test_datasets_are_prompt_completion_in_both_templates(tone_rows):
    text = sft_dataset(tone_rows["train"][:2], "text")
    assert text[0]["prompt"].endswith("### The tone is:\n")
    assert text[0]["completion"] == tone_rows["train"][0]["tone"]
    chat = sft_dataset(tone_rows["train"][:2], "chat")
    assert chat[0]["prompt"][0]["role"] == "user"
    first_tone = tone_rows["train"][0]["tone"]
    assert chat[0]["completion"] == [{"role": "assistant", "content": first_tone}]
    with pytest.raises(ValueError):
        sft_dataset(tone_rows["train"], "xml")


def test_cpu_config_is_explicit(tmp_path):
    config = sft_config(tmp_path)
    assert config.max_length == 128 and config.completion_only_loss is True
    assert config.bf16 is False and config.gradient_checkpointing is False


def test_the_loss_head_projects_only_the_answer_positions_on_cpu(tmp_path, monkeypatch):
    import trl.trainer.utils as trl_utils

    from slmlab.sft import build_trainer

    projected, original = [], trl_utils._ChunkedLogProbFunction.apply

    def spy(hidden, weight, bias, labels, *rest):
        projected.append(hidden.shape[0])
        return original(hidden, weight, bias, labels, *rest)

    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply", spy)
    trainer = build_trainer("tiny-phi3-student", tmp_path, max_steps=2, batch_size=4,
                            save_strategy="no", eval_strategy="no", report_to="none",
                            disable_tqdm=True)
    trainer.train()
    # 4 examples x 2 answer tokens (the tone and the end-of-text token) per step; TRL's CPU
    # default sends every position of the padded batch through the head (~70 rows here)
    assert projected == [8, 8]


def test_cached_adapter_equals_a_freshly_trained_one(tmp_path):
    from slmlab.sft import train_adapter

    def lora_weights(model):
        return {k: v for k, v in model.state_dict().items() if "lora_" in k}

    settings = dict(r=2, max_steps=3, batch_size=4, seed=5)
    stored, _, first = train_adapter("tiny-phi3-student", cache_dir=tmp_path, **settings)
    loaded, _, second = train_adapter("tiny-phi3-student", cache_dir=tmp_path, **settings)
    fresh, _, third = train_adapter("tiny-phi3-student", use_cache=False, **settings)
    assert (first["source"], third["source"]) == ("trained", "trained")
    assert second["source"].startswith("cache") and second["key"] == first["key"]
    expected = lora_weights(fresh)
    assert expected and expected.keys() == lora_weights(loaded).keys()
    for name, tensor in expected.items():  # training is deterministic: bit for bit
        assert torch.equal(lora_weights(stored)[name], tensor), name
        assert torch.equal(lora_weights(loaded)[name], tensor), name
    def trainable(model):
        return [name for name, p in model.named_parameters() if p.requires_grad]

    # the same model either way: what counts as trainable too (lab 07's table reports it)
    assert trainable(loaded) == trainable(fresh) and trainable(fresh)
    assert not loaded.training and not fresh.training
    # another setting is another key: never served the wrong adapter
    other, _, fourth = train_adapter("tiny-phi3-student", cache_dir=tmp_path,
                                     **{**settings, "seed": 6})
    assert fourth["source"] == "trained" and fourth["key"] != first["key"]


def test_another_thread_count_is_another_cache_key():
    # one thread and two sum the floats in another order, so train other weights: a
    # learner's kernel (every core) must not be served what `make course` (one thread) trained
    from slmlab import artifact_cache, zoo

    model_dir, rows, config = zoo.resolve("tiny-phi3-student"), [{"phrase": "x", "tone": "joy"}], {}
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = artifact_cache.cache_key(model_dir, rows, config)
        assert artifact_cache.cache_key(model_dir, rows, config) == one
        torch.set_num_threads(2)
        assert artifact_cache.cache_key(model_dir, rows, config) != one
    finally:
        torch.set_num_threads(threads)


def test_lab_03s_killed_and_resumed_adapter_is_shared_as_the_recipes(tmp_path):
    """Lab 03 trains the recipe itself (checkpoints, evaluation, a kill and a resume) and
    stores its adapter under train_adapter's key: that must be the adapter train_adapter
    would train, bit for bit, and another run must not be stored under that key."""
    from datasets import Dataset

    from slmlab import presets, task, zoo
    from slmlab.data import load_tone
    from slmlab.sft import StopAfter, share_adapter, train_adapter

    model_id, rows, cache = "tiny-phi3-student", list(load_tone("train")), tmp_path / "cache"
    examples = Dataset.from_list(task.examples(rows))

    def lab_03_trainer(callbacks=()):  # as lab 03 builds it, with a smaller run
        model = zoo.load_model(model_id)
        model.config.use_cache = False
        args = sft_config(tmp_path / "run", 6, 3e-3, 4, seed=5, eval_steps=2, save_steps=2,
                          report_to="none", disable_tqdm=True)
        return SFTTrainer(model=model, args=args, train_dataset=examples,
                          eval_dataset=sft_dataset(load_tone("validation")),
                          processing_class=zoo.load_tokenizer(model_id),
                          peft_config=presets.lora_config(2, 4), callbacks=list(callbacks))

    torch.manual_seed(5)  # the lab seeds first: the adapter's initial weights
    lab_03_trainer([StopAfter(3)]).train()
    trainer = lab_03_trainer()
    trainer.train(resume_from_checkpoint=True)
    assert share_adapter(trainer, model_id, rows, list(examples)[:-1], 1.0, cache) is None
    assert not list(cache.glob("*/COMPLETE")), "another run's adapter is never stored"
    assert share_adapter(trainer, model_id, rows, examples, 1.0, cache) is not None
    settings = dict(r=2, max_steps=6, batch_size=4, seed=5)
    loaded, _, info = train_adapter(model_id, cache_dir=cache, **settings)
    fresh, _, _ = train_adapter(model_id, use_cache=False, **settings)
    assert info["source"].startswith("cache")
    expected = {k: v for k, v in fresh.state_dict().items() if "lora_" in k}
    assert expected and all(torch.equal(loaded.state_dict()[k], v) for k, v in expected.items())


def test_the_seed_changes_training_and_every_lab_passes_it_on():
    import re

    from slmlab.sft import train_adapter

    settings = dict(r=2, max_steps=10, batch_size=4, use_cache=False)  # a loss logged every 10
    losses = {seed: train_adapter("tiny-phi3-student", seed=seed, **settings)[2]["losses"]
              for seed in (0, 7)}
    assert losses[0] and losses[0] != losses[7], "another seed, other batches and init"
    # `-p seed=7` must reach every training run of the TRL labs, not only the first one
    for lab in ("03_peft_lora_sft", "04_qlora", "05_merge_int4_export", "06_olive_pipeline",
                "07_tuning_and_evaluation"):
        source = "".join(c["source"] if isinstance(c["source"], str) else "".join(c["source"])
                         for c in json.loads((REPO_ROOT / "solutions" / f"{lab}.ipynb")
                                             .read_text())["cells"])
        for call in re.finditer(r"sft\.(build_trainer|train_adapter)\(", source):
            depth, end = 1, call.end()
            while depth:  # to the call's closing parenthesis
                depth += {"(": 1, ")": -1}.get(source[end], 0)
                end += 1
            assert "seed=" in source[call.end():end], f"{lab}: {call.group(0)} without seed"


def test_two_runs_that_need_the_same_cache_entry_build_it_once(tmp_path):
    import threading

    from slmlab import artifact_cache

    built = []

    def need_artifact() -> None:
        with artifact_cache.one_builder("k", tmp_path):
            if artifact_cache.lookup("k", tmp_path) is None:
                built.append(threading.current_thread().name)
                time.sleep(0.5)  # the other run arrives while this one builds
                artifact_cache.store("k", lambda folder: (folder / "x").write_text("1"),
                                     tmp_path)

    runs = [threading.Thread(target=need_artifact, name=f"run {i}") for i in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert len(built) == 1, built
    assert (artifact_cache.lookup("k", tmp_path) / "x").read_text() == "1"
