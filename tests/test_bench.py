"""`make bench`'s bookkeeping: fixed keys from the labs' metrics, and the decode bound."""

import json

from slmlab import MODELS_DIR
from slmlab.course.bench import decode_flops_per_token, figures, markdown

CONFIG = json.loads((MODELS_DIR / "tiny-phi3-teacher" / "config.json").read_text())
KEYS = {"lora_acc_before", "lora_acc_after", "lora_train_seconds", "lora_trainable_pct",
        "distill_params_ratio", "distill_accuracy_kept", "distill_latency_ratio",
        "distill_memory_ratio", "qlora_memory_ratio", "qlora_acc_delta_pts", "int4_size_ratio",
        "int4_decode_speedup", "onnx_fp32_token_parity", "int4_acc_drop_pts",
        "int4_decode_tokens_per_s", "decode_bound_tokens_per_s"}


def test_decode_flops_count_every_matmul_weight_twice():
    no_context = decode_flops_per_token(CONFIG, context=0)
    h, m, v, n = (CONFIG[k] for k in ("hidden_size", "intermediate_size", "vocab_size",
                                      "num_hidden_layers"))
    assert no_context == 2 * (n * (4 * h * h + 3 * h * m) + h * v)
    assert decode_flops_per_token(CONFIG, context=10) - no_context == n * 4 * 10 * h


def test_figures_map_lab_metrics_to_fixed_keys():
    labs = {
        "01_distillation": {"params_ratio": 8.1, "accuracy_kept_percent": 95.0,
                            "latency_ratio": 3.0, "memory_ratio": 8.1},
        "03_peft_lora_sft": {"accuracy_before": 0.0, "accuracy_after": 0.95,
                             "train_runtime_s": 30.0, "trainable_percent": 1.73},
        "04_qlora": {"whole_model_memory_ratio": 3.7, "accuracy_gap_points": 1.5},
        "05_merge_int4_export": {
            "results": {"PyTorch fp32": {"size_mb": 14.5, "tokens_per_s": 400, "accuracy": 0.95},
                        "ONNX fp32": {"size_mb": 14.6, "tokens_per_s": 4000, "accuracy": 0.95},
                        "ONNX int4": {"size_mb": 2.4, "tokens_per_s": 8000, "accuracy": 0.94}},
            "greedy_parity": {"onnx_fp32": "19/20"}, "accuracy_drop_points": 1.0},
    }
    result = figures(labs, CONFIG, context=40, gflops=50.0)
    assert KEYS <= set(result)
    assert result["distill_accuracy_kept"] == 0.95 and result["onnx_fp32_token_parity"] == 0.95
    assert result["int4_size_ratio"] == round(2.4 / 14.6, 4)
    assert result["int4_decode_speedup"] == 20.0
    assert result["decode_bound_tokens_per_s"] == round(50e9 / decode_flops_per_token(CONFIG, 40))
    # a lab that failed leaves its figures empty instead of breaking the bench
    missing = figures({}, CONFIG, context=40, gflops=50.0)
    assert missing["lora_acc_after"] is None and missing["int4_size_ratio"] is None
    table = markdown({"machine": {"cpu": "X", "cores": 2, "avx512": False, "avx512_bf16": False,
                                  "torch": "2.13.0", "torch_threads": 2},
                      "lab_seconds": {"00_setup_tour": 9.0}, **result})
    assert "| lab 00 seconds | 9.0 |" in table and "`int4_size_ratio`" in table


def test_the_speed_line_names_a_measured_rate_and_leaves_the_threads_as_they_were():
    import re

    import torch

    from slmlab.course.bench import speed_line

    threads = torch.get_num_threads()
    line = speed_line()
    rate = float(re.search(r"speed: ([0-9.]+) GFLOP/s now", line).group(1))
    assert rate > 0.1 and "1 thread" in line and "start" not in line
    assert torch.get_num_threads() == threads
    both = speed_line(rate_at_start=123.45)
    assert re.search(r"speed: 123\.5 at the start, [0-9.]+ GFLOP/s now", both), both
