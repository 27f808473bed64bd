"""Lab 06's Olive helpers: the completion-only data step, the passes, the environment."""

import pytest

from slmlab import olive_pipeline, zoo
from slmlab.task import TEXT_TEMPLATE


def test_completion_only_example_masks_the_prompt_and_padding():
    tokenizer = zoo.load_tokenizer("tiny-phi3-teacher")
    row = {"phrase": "I am glad.", "tone": "joy"}
    example = olive_pipeline.completion_only_example(tokenizer, row, max_seq_len=40)
    full = tokenizer(TEXT_TEMPLATE.format(**row), add_special_tokens=False)["input_ids"]
    assert example["input_ids"][:len(full)] == full, "same tokens as the whole text"
    assert len(example["input_ids"]) == len(example["labels"]) == 40
    trained = [(i, t) for i, t in enumerate(example["labels"]) if t != olive_pipeline.IGNORE_INDEX]
    assert [t for _, t in trained] == [full[-1], tokenizer.eos_token_id]
    assert trained[0][0] == len(full) - 1, "the loss starts at the tone token"
    assert sum(example["attention_mask"]) == len(full) + 1


def test_lora_passes_chain_lora_merge_builder():
    passes = olive_pipeline.lora_passes(4, 10, pass_type="QLoRA")
    assert [p["type"] for p in passes.values()] == ["QLoRA", "MergeAdapterWeights",
                                                     "ModelBuilder"]
    assert passes["lora"]["alpha"] == 8 and passes["lora"]["training_args"]["max_steps"] == 10
    assert passes["builder"]["extra_options"]["hf_token"] == "false"


def test_olive_env_needs_the_builder_copy(tmp_path):
    with pytest.raises(FileNotFoundError, match="make setup"):
        olive_pipeline.olive_env(tmp_path)
    (tmp_path / "onnxruntime_genai").mkdir()
    env = olive_pipeline.olive_env(tmp_path)
    assert env["OLIVE_DISABLE_TELEMETRY"] == "1" and env["PYTHONPATH"].startswith(str(tmp_path))


def test_the_installed_builder_copy_is_the_one_olive_expects():
    import json

    dist = next(olive_pipeline.BUILDER_DIR.glob("onnxruntime_genai-*.dist-info"))
    assert dist.name.startswith("onnxruntime_genai-0.14.1"), dist.name
    assert json.dumps(olive_pipeline.olive_command("run")).count("olive") >= 1


def test_training_losses_reads_trainer_logs(tmp_path):
    log = tmp_path / "run.log"
    log.write_text("{'loss': '2.5', 'grad_norm': '1'}\nnoise\n{'loss': 0.75, 'epoch': 1}\n")
    assert olive_pipeline.training_losses(log) == [2.5, 0.75]
