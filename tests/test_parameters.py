"""Headline targets are asserted only for a lab's default parameters."""

import pytest

from slmlab.parameters import changed_parameters, headline_checks, lab_defaults


def test_defaults_are_read_from_the_labs_parameters_cell():
    defaults = lab_defaults("03_peft_lora_sft")
    assert defaults["model_id"] == "tiny-phi3-teacher" and defaults["check_headlines"] is True
    assert isinstance(defaults["max_steps"], int) and isinstance(defaults["compare_ranks"], list)


def test_a_run_with_the_defaults_checks_its_targets(capsys):
    values = lab_defaults("03_peft_lora_sft") | {"output_dir": "/tmp/elsewhere"}
    assert changed_parameters("03_peft_lora_sft", values) == {}
    assert headline_checks(True, "03_peft_lora_sft", values) is True
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("change", [{"seed": 7}, {"rank": 8, "lora_alpha": 16},
                                    {"compare_ranks": []}])
def test_other_parameters_report_the_targets_and_say_which_changed(change, capsys):
    values = lab_defaults("03_peft_lora_sft") | change
    assert changed_parameters("03_peft_lora_sft", values) == change
    assert headline_checks(True, "03_peft_lora_sft", values) is False
    printed = capsys.readouterr().out
    assert "reported, not asserted" in printed
    assert all(f"{name}={value!r}" in printed for name, value in change.items())


def test_check_headlines_false_always_wins(capsys):
    assert headline_checks(False, "03_peft_lora_sft", lab_defaults("03_peft_lora_sft")) is False
    assert "check_headlines = False" in capsys.readouterr().out


def test_every_lab_with_targets_decides_this_way():
    from slmlab import REPO_ROOT

    for lab in sorted((REPO_ROOT / "solutions").glob("0[1-8]_*.ipynb")):
        text = lab.read_text()
        assert f'headline_checks(check_headlines, \\"{lab.stem}\\", globals())' in text, lab.name
