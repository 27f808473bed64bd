"""Lab 08's measuring helpers."""

import pytest

from slmlab import metrics, peft_methods, presets


def test_peak_rss_sees_an_allocation():
    import numpy as np

    result, peak = metrics.peak_rss_mb(lambda: np.ones(64 * 2**20 // 8).sum())
    assert result == 64 * 2**20 // 8
    assert peak > 40, "a 64 MB array must show in the peak"


def test_every_peft_method_has_a_config_and_unknown_ones_fail():
    for method in ("lora", "qlora", "ia3", "prompt_tuning", "prefix_tuning"):
        assert presets.peft_config(method, 4).task_type == "CAUSAL_LM"
    with pytest.raises(ValueError, match="no PEFT config"):
        presets.peft_config("adapters", 4)
    assert set(peft_methods.LEARNING_RATES) == {"full", "lora", "qlora", "ia3",
                                                "prompt_tuning", "prefix_tuning"}
