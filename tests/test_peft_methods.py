"""Lab 08's measuring helpers."""

import multiprocessing.forkserver
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slmlab import peft_methods, presets, tools

# Measured in a fresh process, as lab 08 measures each method: in a long-lived one (a test
# worker) a freed block that malloc keeps resident can serve the next allocation without the
# RSS growing at all (run 27 measured the 64 MB array below as 0.0 MB in a worker).
PEAK_PROBE = """
import sys, time
import numpy as np
from slmlab import peak_memory
if sys.argv[1] == "sampling":  # where the peak cannot be reset: a thread samples the RSS
    peak_memory._reset_peak_rss = lambda: False
def short():
    return np.ones(64 * 2**20 // 8).sum()
def held():
    array = np.ones(64 * 2**20 // 8)
    time.sleep(0.3)
    return array.sum()
result, peak = peak_memory.peak_rss_mb(short if sys.argv[1] == "vmhwm" else held)
assert result == 64 * 2**20 // 8
print(peak)
"""


def fresh_process_peak(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", PEAK_PROBE, mode], capture_output=True,
                         text=True, timeout=120, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def test_peak_rss_sees_an_allocation_however_short():
    # a 64 MB array that lives a few milliseconds: a sampling thread on a loaded machine
    # missed it (run 20 measured 0.004 MB); the kernel's peak (VmHWM) does not
    assert 60 < fresh_process_peak("vmhwm") < 90
    # where the peak cannot be reset, the sampling thread measures one that lasts
    assert 40 < fresh_process_peak("sampling") < 90


def test_every_peft_method_has_a_config_and_unknown_ones_fail():
    for method in ("lora", "qlora", "ia3", "prompt_tuning", "prefix_tuning"):
        assert presets.peft_config(method, 4).task_type == "CAUSAL_LM"
    with pytest.raises(ValueError, match="no PEFT config"):
        presets.peft_config("adapters", 4)
    # every method lab 08 runs has its learning rate; bottleneck adapters need no PEFT config
    assert set(peft_methods.LEARNING_RATES) == {"full", "lora", "qlora", "ia3", "bottleneck",
                                                "prompt_tuning", "prefix_tuning"}


@pytest.mark.slow
def test_a_method_is_measured_in_its_own_process(tone_rows):
    import psutil

    from slmlab import metrics, zoo

    base = metrics.count_parameters(zoo.load_model("tiny-phi3-student"))

    def command_line(process: psutil.Process) -> str | None:
        try:
            return " ".join(process.cmdline())
        except psutil.Error:  # it ended meanwhile, or is a zombie not yet reaped: not live
            return None

    def workers() -> set[int]:
        """Live processes below this one, but the forkserver and its resource tracker: they
        stay to fork the next method's process."""
        return {p.pid for p in psutil.Process().children(recursive=True)
                if (line := command_line(p)) and "from multiprocessing." not in line}

    before = workers()
    row = peft_methods.run_method("lora", "tiny-phi3-student", base, tone_rows["train"][:32],
                                  tone_rows["test"][:8], steps=2, rank=2, batch_size=4,
                                  learning_rate=1e-3, validation_rows=tone_rows["validation"][:4],
                                  curve_steps=[1, 2])
    assert row["learning_rate"] == 1e-3 and 0 <= row["validation_accuracy"] <= 1
    # the curve is scored along the same run: its last point is the finished model's row
    assert [point["step"] for point in row["curve"]] == [1, 2]
    assert row["curve"][-1]["accuracy"] == row["accuracy"]
    assert row["curve"][-1]["validation_accuracy"] == row["validation_accuracy"]
    assert sum(count for _, count in row["top_answers"]) <= 8 and row["top_answers"]
    assert row["trainable_params"] > 0 and 0 < row["trainable_percent"] < 100
    assert row["peak_memory_mb"] > 0 and 0 <= row["accuracy"] <= 1
    assert len(row["losses"]) == 2, "one loss per step"
    # it ran in a child of this process's forkserver, which imported torch for it
    assert multiprocessing.forkserver._forkserver._forkserver_pid is not None
    # nothing it started is left (processes of earlier tests may end meanwhile: a kernel)
    assert not workers() - before, "the method's process ended"


def test_a_method_that_fails_says_why_in_one_line_and_keeps_its_log(tone_rows):
    with pytest.raises(tools.ToolError) as failed:
        peft_methods.run_method("no_such_method", "tiny-phi3-student", 1,
                                tone_rows["train"][:4], tone_rows["test"][:2], steps=1)
    message = str(failed.value)
    assert "\n" not in message and message.startswith("lab 08's no_such_method run failed")
    assert "no_such_method" in message.split(": ", 1)[1], "the log's last line says why"
    log = Path(message.rsplit("(log ", 1)[1].rstrip(")"))
    assert "Traceback" in log.read_text()
    shutil.rmtree(log.parent)
