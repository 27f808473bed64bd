"""Lab parameters: one clear line for a bad value; targets asserted only at the defaults."""

import pytest
import torch

from slmlab import REPO_ROOT, exercises
from slmlab.parameters import (
    ParameterError,
    changed_parameters,
    check_parameters,
    headline_checks,
    lab_defaults,
    validate,
)


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


def test_every_lab_checks_its_parameters_once_at_the_top():
    for lab in sorted((REPO_ROOT / "solutions").glob("0[0-8]_*.ipynb")):
        text = lab.read_text()
        assert text.count(f'check_parameters(\\"{lab.stem}\\", globals())') == 1, lab.name


def defaults_for(lab):
    return lab_defaults(lab) | {"output_dir": "/tmp/somewhere"}


@pytest.mark.parametrize(("lab", "change", "message"), [
    ("03_peft_lora_sft", {"max_steps": "abc"},
     "parameter max_steps = 'abc' must be a whole number >= 1; papermill's -p passes"),
    ("03_peft_lora_sft", {"learning_rate": -0.001}, "learning_rate = -0.001 must be a number > 0"),
    ("03_peft_lora_sft", {"learning_rate": 0}, "learning_rate = 0 must be a number > 0"),
    ("04_qlora", {"rank": 0}, "parameter rank = 0 must be a whole number >= 1"),
    ("03_peft_lora_sft", {"batch_size": 0}, "parameter batch_size = 0 must be a whole number"),
    ("03_peft_lora_sft", {"compare_ranks": "[]"}, "compare_ranks = '[]' must be a list of whole"),
    ("08_peft_methods_compared", {"lora_ranks": []}, "lora_ranks = [] must be a list of whole "
                                                     "numbers >= 1, not empty"),
    ("01_distillation", {"alpha": 1.5}, "parameter alpha = 1.5 must be a number from 0 to 1"),
    ("03_peft_lora_sft", {"seed": 2**32}, "seed = 4294967296 must be a whole number from 0 to "
                                          "4294967295"),
    ("07_tuning_and_evaluation", {"search_seed": -1}, "search_seed = -1 must be a whole number"),
    ("04_qlora", {"show_cpu_pitfall": "yes"}, "show_cpu_pitfall = 'yes' must be True or False"),
    ("03_peft_lora_sft", {"model_id": "phi-3-tiny"},
     "model_id = 'phi-3-tiny' is not a zoo model (tiny-phi3-teacher, tiny-phi3-student)"),
    ("01_distillation", {"student_id": "tiny"}, "student_id = 'tiny' is not a zoo model"),
    *[(lab, {"model_id": "tiny-phi3-student"}, "model_id = 'tiny-phi3-student' cannot be "
       "exported for ORT-GenAI on CPU: its attention head size is 24 (hidden_size 96 / 4 heads)")
      for lab in ("05_merge_int4_export", "06_olive_pipeline")],
    ("03_peft_lora_sft", {"max_steps": 30}, "interrupt_at = 60 must be below max_steps = 30"),
    # one token is all prompt processing: a decode speed needs at least two
    *[(lab, {"new_tokens": 1}, "parameter new_tokens = 1 must be a whole number >= 2")
      for lab in ("05_merge_int4_export", "06_olive_pipeline")],
    ("02_loralib_layer_swaps", {"output_dir": str(REPO_ROOT / "labs" / "mine")},
     "output_dir = "),
    # on a machine without CUDA (this one, CI): the line says what the lab needs
    ("03_peft_lora_sft", {"model_id": "microsoft/Phi-3-mini-4k-instruct"},
     "needs a CUDA GPU"),
    ("01_distillation", {"teacher_id": "microsoft/Phi-3-mini-4k-instruct"},
     "on a CPU use tiny-phi3-teacher or tiny-phi3-student"),
])
def test_a_bad_parameter_stops_the_lab_with_one_line(lab, change, message):
    if "microsoft/" in str(change) and torch.cuda.is_available():
        pytest.skip("this machine has a GPU: a hub model is a valid choice here")
    with pytest.raises(ParameterError) as raised:
        validate(lab, defaults_for(lab) | change)
    text = str(raised.value)
    assert text.startswith(f"{lab}: parameter ") and message in text and "\n" not in text


@pytest.mark.parametrize(("lab", "change"), [
    ("03_peft_lora_sft", {"chat_steps": 0}), ("03_peft_lora_sft", {"compare_ranks": []}),
    ("03_peft_lora_sft", {"learning_rate": 1}), ("01_distillation", {"alpha": 0.0}),
    ("07_tuning_and_evaluation", {"seed": 0, "search_seed": 3}),
    ("05_merge_int4_export", {"new_tokens": 2}),
    ("00_setup_tour", {"model_id": "microsoft/Phi-3-mini-4k-instruct"}),  # zoo.load says more
])
def test_values_a_learner_may_choose_pass(lab, change, tmp_path, monkeypatch):
    monkeypatch.setitem(exercises.RECORD, "path", None)  # restored after the test
    validate(lab, defaults_for(lab) | change)
    # check_parameters also claims output_dir for this run: a folder of the test's own
    values = defaults_for(lab) | change | {"output_dir": str(tmp_path / lab)}
    assert check_parameters(lab, values) is False  # off the defaults


def test_the_defaults_pass_for_every_lab(tmp_path, monkeypatch):
    monkeypatch.setitem(exercises.RECORD, "path", None)  # restored after the test
    for lab in sorted(p.stem for p in (REPO_ROOT / "labs").glob("0[0-8]_*.ipynb")):
        # output_dir never counts as a change of parameters
        values = lab_defaults(lab) | {"output_dir": str(tmp_path / lab)}
        assert check_parameters(lab, values) is True, lab
        assert (tmp_path / lab / "exercises.json").exists(), "the run records its exercises"


def test_targets_are_reported_met_or_missed_and_fail_only_when_enforced(capsys):
    from slmlab.targets import check_targets, goal

    targets = [goal("accuracy", 0.9, ">=", 0.8), goal("last / first loss", 1.2, "<", 1)]
    assert [t["met"] for t in check_targets(targets, enforce=False)] == [True, False]
    printed = capsys.readouterr().out
    assert "met     accuracy: 0.9 (target >= 0.8)" in printed
    assert "MISSED  last / first loss: 1.2 (target < 1)" in printed
    with pytest.raises(AssertionError, match="missed with the default parameters: last / first"):
        check_targets(targets, enforce=True)
    assert check_targets(targets[:1], enforce=True) == targets[:1]
    with pytest.raises(ValueError, match="relation must be one of"):
        goal("accuracy", 0.9, "==", 0.9)


def test_a_kernel_started_outside_the_notebooks_folder_still_writes_under_runs(
        tmp_path, monkeypatch, capsys):
    # `papermill labs/00_setup_tour.ipynb out.ipynb` from the repository root starts the
    # kernel there: the default "../runs/00_setup_tour" would leave the course folder
    from slmlab import parameters

    monkeypatch.setitem(exercises.RECORD, "path", None)  # restored after the test
    monkeypatch.setattr(parameters, "RUNS_DIR", tmp_path / "course" / "runs")
    (tmp_path / "course" / "labs").mkdir(parents=True)
    lab = "00_setup_tour"
    default = lab_defaults(lab)["output_dir"]
    monkeypatch.chdir(tmp_path / "course")   # the repository root
    values = lab_defaults(lab)
    assert check_parameters(lab, values) is True, "the default output_dir is no change"
    assert values["output_dir"] == str(tmp_path / "course" / "runs" / lab)
    assert (tmp_path / "course" / "runs" / lab).is_dir() and not (tmp_path / "runs").exists()
    assert "this run goes to" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path / "course" / "labs")   # the notebook's folder: as it is
    values = lab_defaults(lab)
    check_parameters(lab, values)
    assert values["output_dir"] == default
    # an output_dir the learner chose is theirs, wherever it points
    values = lab_defaults(lab) | {"output_dir": str(tmp_path / "mine")}
    check_parameters(lab, values)
    assert values["output_dir"] == str(tmp_path / "mine")
