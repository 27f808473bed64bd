"""`make bench`: the course's speed, memory and headline figures in one file.

`python -m slmlab.course.bench [--with-tests]` runs every lab with its defaults (papermill, as
`make course` does) into `runs/bench/`, times each lab, samples the peak resident memory
of the whole process tree (runner + kernels + builder/Olive subprocesses), measures this
machine's matmul rate, and writes `runs/bench.json` with fixed keys, then prints a table.
All figures of one run come from the same machine and the same hour, so their ratios mean
something even on a noisy machine. It is a benchmark, not a test: nothing here asserts.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from slmlab import REPO_ROOT, RUNS_DIR, saving
from slmlab.course.report import collect
from slmlab.course.results_merge import this_machine
from slmlab.course.runner import COURSE_JOBS, run_labs
from slmlab.course.tree_memory import TreeMemory
from slmlab.environment import describe


def matmul_gflops(size: int = 1024, repeats: int = 10, rounds: int = 5) -> float:
    """This machine's fp32 matmul rate with torch's threads: 2·n³ FLOPs per product, the
    fastest of `rounds` rounds (a round that shares the cores with anything else is slower,
    never faster: one such round has read under a third of what the same CPU gives alone)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    fastest = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        fastest = min(fastest, time.perf_counter() - start)
    return 2 * size**3 * repeats / fastest / 1e9


def gflops_with_threads(threads: int = 1) -> float:
    """`matmul_gflops` with `threads` torch threads, leaving the thread count as it was."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return matmul_gflops()
    finally:
        torch.set_num_threads(before)


def speed_line(threads: int = 1, rate_at_start: float | None = None) -> str:
    """One line naming this machine's matmul rate now, with `threads` threads, and at the
    start of the run when `rate_at_start` is given (the test suite prints it at its end: its
    time follows that rate, which moved 1.75x within an hour on the course's machine, so two
    runs' times compare only at like rates; a run that began fast and ended slow shows it)."""
    rate = gflops_with_threads(threads)
    start = f"{rate_at_start:.1f} at the start, " if rate_at_start is not None else ""
    return (f"machine speed: {start}{rate:.1f} GFLOP/s now (fp32 matmul, 1024², {threads} "
            "thread, fastest of 5 rounds); compare suite times only at like speeds")


def decode_flops_per_token(config: dict, context: int) -> float:
    """FLOPs of one decoded token with a KV cache: 2 per weight of every matmul (the
    embedding lookup is free), plus attention over `context` cached positions
    (q·K and p·V: 2 · 2 · context · hidden per layer)."""
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    mlp, vocab = config["intermediate_size"], config["vocab_size"]
    per_layer = hidden * 3 * hidden + hidden * hidden + hidden * 2 * mlp + mlp * hidden
    matmul_weights = layers * per_layer + hidden * vocab   # + lm_head
    return 2 * matmul_weights + layers * 4 * context * hidden


def machine() -> dict:
    """The CPU's name and AVX512 flags (as `make results` stamps runs), beside lab 00's
    environment figures."""
    env = describe()
    return this_machine() | {"torch_threads": env["torch_threads"], "python": env["python"],
                             "torch": torch.__version__}


def figures(lab_metrics: dict[str, dict], config: dict, context: int, gflops: float) -> dict:
    """The fixed keys of bench.json from the labs' metrics.json files (None if a lab failed)."""
    def get(lab: str, *path):
        value = lab_metrics.get(lab)
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    distill, sft_lab = "01_distillation", "03_peft_lora_sft"
    results = get("05_merge_int4_export", "results") or {}
    fp32, int4, torch_fp32 = (results.get(k, {}) for k in ("ONNX fp32", "ONNX int4",
                                                            "PyTorch fp32"))
    parity = get("05_merge_int4_export", "greedy_parity", "onnx_fp32")
    kept = get(distill, "accuracy_kept_percent")
    flops = decode_flops_per_token(config, context)
    return {
        "lora_acc_before": get(sft_lab, "accuracy_before"),
        "lora_acc_after": get(sft_lab, "accuracy_after"),
        "lora_train_seconds": get(sft_lab, "train_runtime_s"),
        "lora_trainable_pct": get(sft_lab, "trainable_percent"),
        "distill_params_ratio": get(distill, "params_ratio"),
        "distill_accuracy_kept": None if kept is None else round(kept / 100, 4),
        "distill_latency_ratio": get(distill, "latency_ratio"),
        "distill_memory_ratio": get(distill, "memory_ratio"),
        "qlora_memory_ratio": get("04_qlora", "whole_model_memory_ratio"),
        "qlora_acc_delta_pts": get("04_qlora", "accuracy_gap_points"),
        "int4_size_ratio": round(int4["size_mb"] / fp32["size_mb"], 4) if int4 and fp32 else None,
        "int4_decode_speedup": round(int4["tokens_per_s"] / torch_fp32["tokens_per_s"], 2)
        if int4 and torch_fp32 else None,
        "onnx_fp32_token_parity": None if parity is None
        else round(int(parity.split("/")[0]) / int(parity.split("/")[1]), 4),
        "int4_acc_drop_pts": get("05_merge_int4_export", "accuracy_drop_points"),
        "int4_decode_tokens_per_s": round(int4["tokens_per_s"]) if int4 else None,
        "decode_bound_tokens_per_s": round(gflops * 1e9 / flops),
        "decode_bound_how": f"{gflops:.1f} GFLOP/s fp32 matmul (1024², torch) / "
                            f"{flops / 1e6:.2f} MFLOP per token (2 per matmul weight incl. "
                            f"lm_head, + attention over {context} cached tokens)",
    }


def run(with_tests: bool = False, runs_dir: Path = RUNS_DIR / "bench",
        jobs: int = COURSE_JOBS) -> dict:
    labs = sorted((REPO_ROOT / "labs").glob("[0-9][0-9]_*.ipynb"))
    with TreeMemory() as memory:
        course_start = time.perf_counter()
        # a failed lab is a missing figure, not a crash of the benchmark
        lab_seconds, failed = run_labs(labs, runs_dir, tolerate=(Exception,), jobs=jobs)
        course_seconds = round(time.perf_counter() - course_start, 1)
    lab_metrics = {lab: metrics for lab, metrics in collect(runs_dir).items()
                   if lab in lab_seconds and lab not in failed}  # never an older run's figures
    config = json.loads((REPO_ROOT / "models" / "tiny-phi3-teacher" / "config.json").read_text())
    context = 40  # the chat prompt (~8 tokens) plus lab 05's 32 decoded tokens
    bench = {"machine": machine() | {"labs_side_by_side": jobs},
             "course_seconds": course_seconds,
             "course_peak_rss_mb": round(memory.peak_mb), "lab_seconds": lab_seconds,
             **figures(lab_metrics, config, context, matmul_gflops())}
    if with_tests:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "-q"], cwd=REPO_ROOT,
                       check=False)  # `make test`'s command
        bench["test_seconds"] = round(time.perf_counter() - start, 1)
    path = RUNS_DIR / "bench.json"
    saving.write_json(path, bench)
    print_table(bench)
    print(f"written: {path}")
    return bench


def print_table(bench: dict) -> None:
    print(f"\nmachine: {bench['machine']['cpu']}, {bench['machine']['cores']} cores, "
          f"AVX512 {'yes' if bench['machine']['avx512'] else 'no'}")
    for key, value in bench.items():
        if key == "lab_seconds":
            for lab, seconds in value.items():
                print(f"  {'lab ' + lab[:2] + ' seconds':32} {seconds}")
        elif key != "machine":
            print(f"  {key:32} {value}")


def markdown(bench: dict) -> str:
    """A bench.json as a markdown table."""
    m = bench["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, AVX512 {'yes' if m['avx512'] else 'no'}"
             f" (AVX512-BF16 {'yes' if m['avx512_bf16'] else 'no'}), torch {m['torch']} with "
             f"{m['torch_threads']} threads"
             + (f"; labs {m['labs_side_by_side']} at a time, one thread each."
                if m.get("labs_side_by_side", 1) > 1 else "."),
             "", "| figure | value |", "|---|---|"]
    for key, value in bench.items():
        if key == "lab_seconds":
            lines += [f"| lab {lab[:2]} seconds | {sec} |" for lab, sec in value.items()]
        elif key != "machine":
            lines.append(f"| `{key}` | {value} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if "--markdown" in sys.argv:  # the last run as a markdown table
        print(markdown(json.loads((RUNS_DIR / "bench.json").read_text())))
    else:
        # --jobs 1: one lab at a time with every core's thread, as a learner's kernel runs a
        # lab (the labs' compute times in the course map come from such runs)
        jobs = int(sys.argv[sys.argv.index("--jobs") + 1]) if "--jobs" in sys.argv else COURSE_JOBS
        run(with_tests="--with-tests" in sys.argv, jobs=jobs)
