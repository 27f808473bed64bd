"""Bad input, faults and re-runs: each case a learner meets ends in one clear line, and
nothing earlier is lost.

Rows of the matrix tested elsewhere, next to the code they exercise:
- malformed JSONL, missing field, unknown tone, empty split, duplicates, non-UTF-8, CSV,
  other field names: tests/test_data.py
- wrong papermill types and ranges, unknown model_id, output_dir inside labs/:
  tests/test_parameters.py, and a lab stopped in its first cell: tests/test_labs_run.py
- hub ID offline, a local path that is not a model: tests/test_zoo.py
- 4-bit unavailable (labs 04, 06, 08 run their fallback to the end): tests/test_labs_run.py
- SIGKILL mid-training and every incomplete checkpoint, then --resume: tests/test_resume.py
- `make course` with a lab failing (others run, report marks it, exit code): tests/test_course.py
"""

import errno
import json
import subprocess
import sys

import pytest
from peft import get_peft_model

from slmlab import REPO_ROOT, environment, export, presets, resume, saving, zoo
from slmlab.course.runner import run_lab

DISK_FULL = OSError(errno.ENOSPC, "No space left on device")


# -- a lab run twice, or pointed at a folder it does not own ---------------------------------

def test_a_second_run_of_a_lab_starts_clean_and_keeps_executed_notebooks(tmp_path, capsys):
    out = saving.start_run("03_peft_lora_sft", tmp_path / "run")
    (out / "text_r4" / "checkpoint-150").mkdir(parents=True)  # what the first run left
    (out / "metrics.json").write_text("{}")
    (out / "03_peft_lora_sft.ipynb").write_text("{}")         # papermill's copy, being written
    capsys.readouterr()
    saving.start_run("03_peft_lora_sft", out)
    assert sorted(p.name for p in out.iterdir()) == [".slmlab-run", "03_peft_lora_sft.ipynb"]
    assert "removed the earlier run's 2 files and folders" in capsys.readouterr().out


def test_a_folder_of_another_lab_or_of_other_files_is_refused(tmp_path):
    saving.start_run("03_peft_lora_sft", tmp_path / "lab03")
    (tmp_path / "lab03" / "adapter").mkdir()
    with pytest.raises(saving.SaveError, match=r"^05_merge_int4_export: output_dir .*lab03' "
                                              r"holds a run of lab 03_peft_lora_sft \(adapter\)"):
        saving.start_run("05_merge_int4_export", tmp_path / "lab03")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(saving.SaveError, match="holds files no lab run wrote .*notes.txt"):
        saving.start_run("05_merge_int4_export", tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "lab03" / "adapter").is_dir()


def test_an_output_dir_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(saving.SaveError) as raised:
        saving.start_run("02_loralib_layer_swaps", tmp_path / "a_file" / "run")
    message = str(raised.value)
    assert message.startswith("02_loralib_layer_swaps: output_dir")
    assert "is not writable" in message and "\n" not in message


@pytest.mark.slow
def test_lab_run_twice_in_one_folder_gives_the_same_figures_and_no_leftovers(tmp_path):
    lab = REPO_ROOT / "labs" / "00_setup_tour.ipynb"
    first = json.loads((run_lab(lab, runs_dir=tmp_path).parent / "metrics.json").read_text())
    (tmp_path / lab.stem / "left_over.txt").write_text("from the first run")
    executed = run_lab(lab, runs_dir=tmp_path)
    second = json.loads((executed.parent / "metrics.json").read_text())
    assert not (tmp_path / lab.stem / "left_over.txt").exists()
    assert second.keys() == first.keys()
    timed = {k for k in first if "per_second" in k}
    assert {k: first[k] for k in first.keys() - timed} == {k: second[k]
                                                          for k in second.keys() - timed}


# -- a full disk or a failed build never loses the previous artifact -------------------------

def test_a_full_disk_while_saving_keeps_the_previous_version(tmp_path):
    target = tmp_path / "adapter"
    with saving.replace_atomically(target) as staging:
        (staging / "weights").write_text("v1")
    with pytest.raises(saving.SaveError) as raised, saving.replace_atomically(target) as staging:
        (staging / "weights").write_text("v2, half writ")
        raise DISK_FULL
    assert str(raised.value) == (f"could not save {target}: No space left on device; "
                                 "the previous adapter is intact")
    assert (target / "weights").read_text() == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"], "no partial folder left"


def test_a_failed_onnx_build_leaves_the_previous_export(tmp_path, monkeypatch):
    out = tmp_path / "onnx_int4"
    out.mkdir()
    (out / "model.onnx").write_text("the previous export")
    dies = ("import sys; open(sys.argv[1] + '/model.onnx', 'w').write('half');"
            "print('OSError: [Errno 28] No space left on device'); sys.exit(1)")
    monkeypatch.setattr(export, "builder_command",
                        lambda model_dir, out_dir, *a: [sys.executable, "-c", dies, str(out_dir)])
    with pytest.raises(RuntimeError) as raised:
        export.build_onnx(zoo.resolve("tiny-phi3-teacher"), out, "int4")
    message = str(raised.value)
    assert "\n" not in message and "No space left on device" in message
    assert message.endswith("the previous onnx_int4 is intact")
    assert (out / "model.onnx").read_text() == "the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["onnx_int4", "onnx_int4.builder.log"]


def test_a_full_disk_at_a_checkpoint_stops_training_with_one_line(tmp_path, monkeypatch, capsys):
    # torch.save writes the optimizer state of each checkpoint: the second one hits a full disk.
    # The script runs as `python -m slmlab.sft` would, in this process (no second import of
    # torch and TRL): what it writes to stderr and its exit status are what a learner sees.
    import runpy

    import torch

    real_save = torch.save

    def save(obj, path, *args, **kwargs):
        if "checkpoint-4" in str(path):
            raise OSError(28, "No space left on device")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(sys, "argv", ["sft", "--output-dir", str(tmp_path), "--max-steps", "4",
                                      "--save-steps", "2", "--model-id", "tiny-phi3-student",
                                      "--batch-size", "4"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("slmlab.sft", run_name="__main__")
    # sys.exit(text) prints the text to stderr and exits with status 1
    assert exited.value.code == (f"training stopped at step 4: could not write to {tmp_path} "
                                 f"(No space left on device); last complete checkpoint: "
                                 f"{tmp_path / 'checkpoint-2'}; free space, then rerun with "
                                 "--resume")
    assert "Traceback" not in capsys.readouterr().err
    assert resume.last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-2"


# -- an adapter exported with a base it was not trained on -----------------------------------

def test_an_adapter_from_another_model_is_named_with_the_base(tmp_path):
    student, _ = zoo.load("tiny-phi3-student")
    get_peft_model(student, presets.lora_config(4, 8)).save_pretrained(tmp_path / "adapter")
    teacher = zoo.resolve("tiny-phi3-teacher")
    with pytest.raises(export.AdapterMismatch) as raised:
        export.build_onnx(teacher, tmp_path / "onnx", "fp32", adapter_path=tmp_path / "adapter")
    message = str(raised.value)
    assert message.startswith(f"adapter {tmp_path / 'adapter'} (trained on ")
    assert f"does not fit base {teacher}" in message and "\n" not in message
    assert not (tmp_path / "onnx").exists(), "checked before the builder ran"
    export.check_adapter_fits(tmp_path / "adapter", zoo.resolve("tiny-phi3-student"))
    with pytest.raises(export.AdapterMismatch, match="is not a PEFT adapter"):
        export.check_adapter_fits(tmp_path, teacher)


def test_an_adapter_of_another_rank_fits_the_same_base(tmp_path):
    student, _ = zoo.load("tiny-phi3-student")
    get_peft_model(student, presets.lora_config(16, 32)).save_pretrained(tmp_path / "r16")
    export.check_adapter_fits(tmp_path / "r16", zoo.resolve("tiny-phi3-student"))


# -- a notebook opened in another or older environment ---------------------------------------

def test_a_kernel_off_the_pins_says_which_command_sets_it_up(tmp_path, capsys, monkeypatch):
    pins = tmp_path / "requirements.txt"
    pins.write_text("torch==1.0.0\npeft==0.0.1\n")
    monkeypatch.setattr(environment.off_pin, "__defaults__", (pins,))
    assert environment.warn_if_off_pin() is False
    line = capsys.readouterr().out.strip()
    assert line.startswith("This kernel is not the course's environment: torch ")
    assert "(pinned 1.0.0), peft " in line and line.endswith("(`make lab` does both).")
    assert "\n" not in line


def test_this_environment_is_on_the_pins():
    assert environment.off_pin() == {}


def test_make_lab_creates_the_environment_and_starts_as_root():
    dry_run = subprocess.run(["make", "-n", "lab"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert "jupyter lab" in dry_run.stdout
    assert ("--allow-root" in dry_run.stdout) == (subprocess.check_output(["id", "-u"]) == b"0\n")
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "\nlab: setup\n" in makefile, "make lab builds .venv first when it is missing"


def test_an_earlier_run_under_runs_from_before_markers_is_cleaned(tmp_path, monkeypatch):
    monkeypatch.setattr(saving, "RUNS_DIR", tmp_path)
    old = tmp_path / "03_peft_lora_sft"
    (old / "text_r4").mkdir(parents=True)
    saving.start_run("03_peft_lora_sft", old)
    assert [p.name for p in old.iterdir()] == [".slmlab-run"]
