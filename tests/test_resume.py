"""A killed run resumes from its last complete checkpoint; half-written files are never used.

One uninterrupted run of the SFT script is the reference. Each test breaks a copy of its
run folder the way a kill at some moment would (or kills a real process at a point the
test controls), resumes, and checks the line the learner sees and that the final adapter
is the reference's, bit for bit (training here is deterministic: same seed, same threads).
"""

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from slmlab import REPO_ROOT, artifact_cache, resume, saving
from slmlab.sft import main

ACCELERATE = Path(sys.executable).with_name("accelerate")
# 12 steps, a checkpoint every 4: checkpoints 8 and 12 are kept (save_total_limit 2)
SETTINGS = ["--model-id", "tiny-phi3-student", "--batch-size", "4", "--max-steps", "12",
            "--save-steps", "4", "--seed", "3"]
ADAPTER = "adapter_model.safetensors"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The run folder of a run never stopped (its checkpoints and final adapter)."""
    folder = tmp_path_factory.mktemp("reference") / "run"
    summary = main([*SETTINGS, "--output-dir", str(folder)])
    assert summary["global_step"] == 12 and summary["resumed_from"] is None
    assert [p.name for p in resume.checkpoints(folder)] == ["checkpoint-12", "checkpoint-8"]
    return folder


def killed_copy(reference: Path, tmp_path: Path) -> Path:
    """The reference's checkpoints without its final adapter: a run killed after step 12's
    save, before the end."""
    folder = tmp_path / "run"
    shutil.copytree(reference, folder, ignore=lambda where, names: [
        n for n in names if where == str(reference) and n in ("adapter", "train_summary.json")])
    return folder


def assert_same_adapter(folder: Path, reference: Path) -> None:
    expected, got = (load_file(f / "adapter" / ADAPTER) for f in (reference, folder))
    assert expected.keys() == got.keys() and expected
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), f"{name} differs from the uninterrupted run's"


def truncate(path: Path, keep: float = 0.5) -> None:
    path.write_bytes(path.read_bytes()[:int(path.stat().st_size * keep)])


# fault, how to inflict it on checkpoint-12, what the learner reads
FAULTS = {
    "empty trainer_state.json": (lambda c: (c / "trainer_state.json").write_text(""),
                                 "trainer_state.json is empty"),
    "truncated trainer_state.json": (lambda c: truncate(c / "trainer_state.json"),
                                     "trainer_state.json is truncated"),
    "missing trainer_state.json": (lambda c: (c / "trainer_state.json").unlink(),
                                   "trainer_state.json is missing"),
    "missing adapter weights": (lambda c: (c / ADAPTER).unlink(),
                                "the model or adapter weights are missing"),
    "truncated safetensors": (lambda c: truncate(c / ADAPTER, 0.9),
                              f"{ADAPTER} is truncated"),
    "missing optimizer state": (lambda c: (c / "optimizer.pt").unlink(),
                                "the optimizer (optimizer.pt) is missing"),
    "truncated optimizer state": (lambda c: truncate(c / "optimizer.pt"),
                                  "optimizer.pt is truncated"),
    "empty RNG state": (lambda c: (c / "rng_state.pth").write_bytes(b""),
                        "rng_state.pth is empty"),
}


def test_a_complete_checkpoint_has_no_problem(reference):
    for checkpoint in resume.checkpoints(reference):
        assert resume.checkpoint_problem(checkpoint) is None
    assert resume.last_complete_checkpoint(reference).name == "checkpoint-12"


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS)
def test_an_incomplete_checkpoint_is_set_aside_and_the_run_resumes_from_the_one_before(
        fault, reference, tmp_path, capsys):
    folder = killed_copy(reference, tmp_path)
    inflict, why = FAULTS[fault]
    inflict(folder / "checkpoint-12")
    assert resume.checkpoint_problem(folder / "checkpoint-12") == why
    summary = main([*SETTINGS, "--output-dir", str(folder), "--resume"])
    assert (f"checkpoint-12 is incomplete ({why}; kept as checkpoint-12.incomplete): "
            "resuming from checkpoint-8") in capsys.readouterr().out.splitlines()
    assert summary["resumed_from"].endswith("checkpoint-8") and summary["global_step"] == 12
    assert (folder / "checkpoint-12.incomplete").is_dir(), "never deleted"
    assert_same_adapter(folder, reference)


@pytest.mark.slow
def test_with_no_complete_checkpoint_the_run_starts_from_the_beginning(reference, tmp_path,
                                                                        capsys):
    folder = killed_copy(reference, tmp_path)
    (folder / "checkpoint-12" / "trainer_state.json").write_text("")
    (folder / "checkpoint-8" / ADAPTER).unlink()
    summary = main([*SETTINGS, "--output-dir", str(folder), "--resume"])
    lines = capsys.readouterr().out.splitlines()
    start = f"no complete checkpoint in {folder}, starting from the beginning"
    assert (f"checkpoint-12 is incomplete (trainer_state.json is empty; kept as "
            f"checkpoint-12.incomplete): {start}") in lines
    assert (f"checkpoint-8 is incomplete (the model or adapter weights are missing; kept as "
            f"checkpoint-8.incomplete): {start}") in lines
    assert summary["resumed_from"] is None and summary["global_step"] == 12
    assert_same_adapter(folder, reference)


def test_a_folder_without_checkpoints_starts_from_the_beginning(tmp_path):
    said = []
    assert resume.resume_point(tmp_path, said.append) is None
    assert said == [f"no checkpoint in {tmp_path}: starting from the beginning"]


def test_a_second_incomplete_copy_does_not_overwrite_the_first(reference, tmp_path):
    folder = killed_copy(reference, tmp_path)
    (folder / "checkpoint-12.incomplete").mkdir()
    (folder / "checkpoint-12" / "trainer_state.json").write_text("")
    said = []
    assert resume.resume_point(folder, said.append).endswith("checkpoint-8")
    assert said == ["checkpoint-12 is incomplete (trainer_state.json is empty; kept as "
                    "checkpoint-12.incomplete-2): resuming from checkpoint-8"]


# Holds the SFT script at the start of step 9, after checkpoint-8 was written to the end,
# and says so in a file: the test kills it there, not at a moment the CPU's speed picks.
HOLD = """
import sys, time
from pathlib import Path
from transformers import TrainerCallback
import slmlab.sft as sft

class Hold(TrainerCallback):
    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == 8:
            Path(sys.argv[1]).write_text("held")
            time.sleep(600)

build = sft.build_trainer
def build_and_hold(*args, **kwargs):
    trainer = build(*args, **kwargs)
    trainer.add_callback(Hold())
    return trainer

sft.build_trainer = build_and_hold
sft.main(sys.argv[2:])
"""


@pytest.mark.slow
def test_a_run_killed_mid_training_resumes_under_accelerate_to_the_same_adapter(
        reference, tmp_path):
    """The script killed mid-run (a closed laptop, an OOM kill) with SIGKILL, no clean-up,
    then resumed with `accelerate launch` (one CPU process here): it ends at the adapter of
    the run never stopped."""
    folder, held = tmp_path / "run", tmp_path / "held"
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(held), *SETTINGS,
                                "--output-dir", str(folder)], cwd=REPO_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not held.exists():
            assert process.poll() is None, f"the run ended early: {process.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "the run never reached step 9"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not (folder / "adapter").exists(), "killed before the end"
    assert resume.checkpoint_problem(folder / "checkpoint-8") is None
    command = [str(ACCELERATE), "launch", "--cpu", "--num_processes", "1", "--num_machines",
               "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "slmlab.sft",
               *SETTINGS, "--output-dir", str(folder), "--resume"]
    out = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resuming from checkpoint-8" in out.stdout.splitlines()
    summary = saving.read_json(folder / "train_summary.json", "rerun")
    assert summary["global_step"] == 12 and summary["resumed_from"].endswith("checkpoint-8")
    assert_same_adapter(folder, reference)


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["marker missing", "adapter cut short"])
def test_a_broken_cache_entry_is_rebuilt_never_used(damage, tmp_path, capsys):
    from slmlab.sft import train_adapter

    settings = dict(r=2, max_steps=3, batch_size=4, seed=5, cache_dir=tmp_path)
    _, _, first = train_adapter("tiny-phi3-student", **settings)
    entry = tmp_path / first["key"]
    if damage == "marker missing":  # a folder copied half-way by hand, or an older writer
        (entry / artifact_cache.MARKER).unlink()
        why = "its COMPLETE marker is missing"
    else:
        truncate(entry / "adapter" / ADAPTER, 0.9)
        why = "its files differ from the digest stored when it was written"
    capsys.readouterr()
    rebuilt, _, again = train_adapter("tiny-phi3-student", **settings)
    assert (f"cache entry {first['key']} is incomplete ({why}): rebuilding it"
            in capsys.readouterr().out.splitlines())
    assert again["source"] == "trained" and artifact_cache.entry_problem(entry) is None
    fresh, _, _ = train_adapter("tiny-phi3-student", **{**settings, "cache_dir": None},
                                use_cache=False)
    for name, tensor in fresh.state_dict().items():
        if "lora_" in name:
            assert torch.equal(rebuilt.state_dict()[name], tensor), name


def test_a_truncated_metrics_file_is_reported_and_skipped(tmp_path, capsys):
    from slmlab.course.report import collect
    from slmlab.course.variance import stored_runs

    for lab, text in (("01_distillation", '{"accuracy": 0.9}'),
                      ("03_peft_lora_sft", '{"accuracy_after": 0.9')):  # cut short
        (tmp_path / "seed_0" / lab).mkdir(parents=True)
        (tmp_path / "seed_0" / lab / "metrics.json").write_text(text)
    broken = tmp_path / "seed_0" / "03_peft_lora_sft" / "metrics.json"
    assert list(collect(tmp_path / "seed_0")) == ["01_distillation"]
    assert f"{broken} is incomplete (not valid JSON): ignored; rerun lab 03" \
        in capsys.readouterr().out.splitlines()
    assert list(stored_runs(tmp_path)[0]) == ["01_distillation"]
    assert f"{broken} is incomplete (not valid JSON): ignored; rerun lab 03 for seed_0" \
        in capsys.readouterr().out.splitlines()


def test_json_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    path = saving.write_json(tmp_path / "metrics.json", {"a": 1})
    assert saving.read_json(path, "rerun") == {"a": 1}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", disk_full)
    with pytest.raises(saving.SaveError, match="No space left on device; the previous "
                                               "metrics.json is intact"):
        saving.write_json(path, {"a": 2})
    assert saving.read_json(path, "rerun") == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"], "no temporary file left"
