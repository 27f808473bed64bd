"""Lab 08's measuring helpers."""

import time

import pytest

from slmlab import metrics, peft_methods, presets


def test_peak_rss_sees_an_allocation_however_short(monkeypatch):
    import numpy as np

    # a 64 MB array that lives a few milliseconds: a sampling thread on a loaded machine
    # missed it (run 20 measured 0.004 MB); the kernel's peak (VmHWM) does not
    result, peak = metrics.peak_rss_mb(lambda: np.ones(64 * 2**20 // 8).sum())
    assert result == 64 * 2**20 // 8
    assert 60 < peak < 90, peak
    # where the peak cannot be reset, the sampling thread measures one that lasts
    monkeypatch.setattr(metrics, "_reset_peak_rss", lambda: False)

    def hold():
        array = np.ones(64 * 2**20 // 8)
        time.sleep(0.3)
        return array.sum()

    assert 40 < metrics.peak_rss_mb(hold)[1] < 90


def test_every_peft_method_has_a_config_and_unknown_ones_fail():
    for method in ("lora", "qlora", "ia3", "prompt_tuning", "prefix_tuning"):
        assert presets.peft_config(method, 4).task_type == "CAUSAL_LM"
    with pytest.raises(ValueError, match="no PEFT config"):
        presets.peft_config("adapters", 4)
    assert set(peft_methods.LEARNING_RATES) == {"full", "lora", "qlora", "ia3",
                                                "prompt_tuning", "prefix_tuning"}


@pytest.mark.slow
def test_a_method_is_measured_in_its_own_process(tone_rows):
    import psutil

    from slmlab import metrics, zoo

    base = metrics.count_parameters(zoo.load_model("tiny-phi3-student"))
    def workers() -> set[int]:  # multiprocessing's resource tracker and the fork server
        return {p.pid for p in psutil.Process().children(recursive=True)  # stay: not ours
                if not {"resource_tracker", "forkserver"} & set(" ".join(p.cmdline())
                                                                 .replace(".", " ").split())}

    before = workers()
    row = peft_methods.run_method("lora", "tiny-phi3-student", base, tone_rows["train"][:32],
                                  tone_rows["test"][:8], steps=2, rank=2, batch_size=4)
    assert row["trainable_params"] > 0 and 0 < row["trainable_percent"] < 100
    assert row["peak_memory_mb"] > 0 and 0 <= row["accuracy"] <= 1
    assert workers() == before, "the method's process ended"
