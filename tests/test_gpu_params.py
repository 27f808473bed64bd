"""The GPU parameter files: every key is a parameter of its lab, with a value the lab takes,
and the TRL, PEFT and bitsandbytes configs the labs build from them are accepted by those
libraries at Phi-3-mini's real shapes (on the meta device: nothing is trained or loaded)."""

from pathlib import Path

import pytest
import torch
import yaml
from peft import get_peft_model

from slmlab import REPO_ROOT, memory_plan, phi3_family, presets, sft
from slmlab.parameters import lab_defaults, validate

PARAMS = sorted((REPO_ROOT / "labs" / "params" / "phi3-mini-gpu").glob("*.yaml"))
# labs that train or export (lab 01: Phi-3-medium teaches Phi-3-mini, which shares its
# tokenizer)
TRAINING_LABS = ["01_distillation", "02_loralib_layer_swaps", "03_peft_lora_sft", "04_qlora",
                 "05_merge_int4_export", "06_olive_pipeline", "07_tuning_and_evaluation",
                 "08_peft_methods_compared"]


def test_every_training_lab_has_a_gpu_parameter_file():
    assert [p.stem for p in PARAMS] == TRAINING_LABS


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: p.stem)
def test_every_key_is_a_lab_parameter_of_a_type_the_lab_takes(path, monkeypatch):
    values = yaml.safe_load(path.read_text())
    defaults = lab_defaults(path.stem)
    assert set(values) <= set(defaults), set(values) - set(defaults)
    student = values.get("model_id", values.get("student_id"))
    assert student == phi3_family.FAMILY["Phi-3-mini-4k"]["hub_id"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the GPU it is for
    validate(path.stem, defaults | values)


def gpu_values(lab: str) -> dict:
    return lab_defaults(lab) | yaml.safe_load(
        (REPO_ROOT / "labs" / "params" / "phi3-mini-gpu" / f"{lab}.yaml").read_text())


def test_lab_03s_trainer_settings_are_accepted_by_trl(tmp_path):
    p = gpu_values("03_peft_lora_sft")
    config = sft.sft_config(tmp_path, p["max_steps"], p["learning_rate"], p["batch_size"],
                            bf16=True, gradient_accumulation_steps=p["gradient_accumulation"],
                            gradient_checkpointing=p["gradient_checkpointing"],
                            max_length=p["max_length"])
    assert config.gradient_accumulation_steps * config.per_device_train_batch_size == 16
    assert config.gradient_checkpointing and config.bf16


@pytest.mark.parametrize("lab", ["03_peft_lora_sft", "04_qlora"])
def test_the_lora_config_fits_phi3_minis_modules(lab):
    p = gpu_values(lab)
    config = presets.lora_config(p["rank"], p.get("lora_alpha", 2 * p["rank"]))
    with torch.device("meta"):
        model = get_peft_model(phi3_family.skeleton("Phi-3-mini-4k"), config)
    trainable = sum(t.numel() for t in model.parameters() if t.requires_grad)
    # every target module was found, and the memory plan counts the same parameters
    assert trainable == memory_plan.lora_parameters(model.config, p["rank"])


def test_lab_04s_four_bit_config_is_accepted_by_bitsandbytes():
    config = presets.four_bit_config(torch.bfloat16)
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_use_double_quant and config.bnb_4bit_compute_dtype == torch.bfloat16
    assert gpu_values("04_qlora")["gradient_checkpointing"] is True


def test_readme_shows_how_to_run_a_lab_with_a_gpu_file():
    readme = (REPO_ROOT / "README.md").read_text()
    assert "labs/params/phi3-mini-gpu/" in readme and Path(PARAMS[0]).exists()


def test_lab_01s_teacher_and_student_fit_one_80_gb_gpu_one_after_the_other(tmp_path):
    p = gpu_values("01_distillation")
    assert p["teacher_id"] == phi3_family.FAMILY["Phi-3-medium-4k"]["hub_id"]
    config = sft.sft_config(tmp_path, p["teacher_steps"], p["teacher_lr"], 16, bf16=True)
    assert config.learning_rate == p["teacher_lr"] and config.bf16
    teacher = phi3_family.config("Phi-3-medium-4k")
    student = phi3_family.config("Phi-3-mini-4k")
    assert teacher.vocab_size == student.vocab_size, "the KD loss compares the same tokens"
    gb, seq_len = 1e9, 64  # tone examples are shorter than 64 tokens
    teacher_training = memory_plan.estimate(teacher, "lora", 16, seq_len, lora_r=4)["total"]
    merged_teacher = 2 * phi3_family.parameter_count("Phi-3-medium-4k")
    student_training = memory_plan.estimate(student, "full", 16, seq_len)["total"]
    budget = (80 - memory_plan.GPU_OVERHEAD_GB) * gb
    assert teacher_training < budget
    assert merged_teacher + student_training < budget, (merged_teacher + student_training) / gb
