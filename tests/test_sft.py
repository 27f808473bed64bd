"""The SFT script: runs under `accelerate launch` (one CPU process here) and resumes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from slmlab import REPO_ROOT
from slmlab.sft import sft_config, sft_dataset

ACCELERATE = Path(sys.executable).with_name("accelerate")


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


def run_script(output_dir: Path, *extra: str) -> dict:
    command = [str(ACCELERATE), "launch", "--cpu", "--num_processes", "1", "--num_machines",
               "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "slmlab.sft",
               "--output-dir", str(output_dir), "--batch-size", "4", *extra]
    out = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads((output_dir / "train_summary.json").read_text())


def test_script_under_accelerate_trains_saves_and_resumes(tmp_path):
    first = run_script(tmp_path, "--max-steps", "4")
    assert first["global_step"] == 4
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    assert (tmp_path / "checkpoint-4").is_dir()
    # a later run with --resume continues from checkpoint-4 instead of starting over
    resumed = run_script(tmp_path, "--max-steps", "6", "--resume")
    assert resumed["global_step"] == 6
    assert resumed["resumed_from"].endswith("checkpoint-4")
    assert first["resumed_from"] is None
