"""`make variance`: the labs' headline figures over several seeds, to `runs/variance.json`.

One seed on one CPU is one draw. `python -m slmlab.course.variance [--seeds 0 1 2 3 4]` runs the
labs whose figures the course draws conclusions from once per seed with papermill, as
`make course` does, and writes for every number in their `metrics.json`: mean, standard
deviation, min, max and the values per seed. For each comparison the course states (KD vs
hard labels, QLoRA vs fp32 LoRA, ...) it writes the paired per-seed difference and whether
its sign held on every seed. `--labs 02 08` runs only those labs; the summary is always
built from every lab's runs under `runs/variance/seed_*`, so a partial run adds to the
earlier ones. A benchmark, not a test: all labs take about 30 minutes per seed on 2 cores.
`--jobs 1` runs one lab at a time with every core's thread, as a learner's kernel does:
the thread count changes the float sums and so each training run, a draw of its own (a
lab can meet its targets with one thread and miss one with two); those runs and their
summary go to `runs/variance_{N}threads/` and `runs/variance_{N}threads.json`.
`make results` merges these summaries into docs/results.json.
"""

import argparse
import json
import math
import statistics
from pathlib import Path

from slmlab import REPO_ROOT, RUNS_DIR, saving
from slmlab.course.runner import COURSE_JOBS, check_jobs, longest_first, run_pool, threads_per_job

LABS = {"01_distillation": {"curve_gold_rows": [8, 16, 32, 64, 128, 240]},  # the whole curve
        "02_loralib_layer_swaps": {"train_choices": True},  # the projection comparison
        "03_peft_lora_sft": {},
        "04_qlora": {"show_cpu_pitfall": False},  # the pitfall run is not a comparison
        "05_merge_int4_export": {},
        "06_olive_pipeline": {"cli_long_steps": 3000},  # the CLI's whole-text loss, run longer
        "07_tuning_and_evaluation": {"trials": 12},  # the stored sweep the lab reads
        # each method at the best of three learning rates, chosen on validation; IA3 and
        # the soft prompts also trained for 1,000 steps, scored along the way
        "08_peft_methods_compared": {"sweep_learning_rates": True,
                                     "curve_steps": [50, 100, 200, 400, 700, 1000]}}
# (lab, figure a, figure b): the course's claims "a is higher than b", checked per seed
COMPARISONS = [
    ("01_distillation", "student (KD)_accuracy", "student (hard labels)_accuracy"),
    ("01_distillation", "student (KD)_accuracy", "student (gold only)_accuracy"),
    ("01_distillation", "student (KD)_accuracy", "teacher_accuracy"),
    # the data-size curve: the teacher's rows added to few gold rows, then to all of them
    ("01_distillation", "gold_curve/16/gold + teacher KD/accuracy",
     "gold_curve/16/gold only/accuracy"),
    ("01_distillation", "gold_curve/16/gold + teacher KD/accuracy",
     "gold_curve/16/gold + teacher labels/accuracy"),
    ("01_distillation", "gold_curve/240/gold + teacher KD/accuracy",
     "gold_curve/240/gold only/accuracy"),
    ("03_peft_lora_sft", "rank_comparison/4/accuracy", "rank_comparison/64/accuracy"),
    ("03_peft_lora_sft", "accuracy_after", "chat_template_accuracy"),
    ("02_loralib_layer_swaps", "accuracy_after", "accuracy_before"),
    ("02_loralib_layer_swaps", "projection_choices/q, k, v + o/accuracy",
     "projection_choices/q, v/accuracy"),
    # lora.Embedding on top of lab 02's q, v + o run: what training the token table adds
    ("02_loralib_layer_swaps", "projection_choices/q, v + o + embedding/accuracy",
     "projection_choices/q, v + o (above)/accuracy"),
    ("04_qlora", "runs/LoRA, fp32 base/accuracy", "runs/QLoRA, nf4 base/accuracy"),
    ("05_merge_int4_export", "results/PyTorch fp32/accuracy", "results/ONNX int4/accuracy"),
    ("05_merge_int4_export", "results/ONNX int4/accuracy",
     "results/ONNX int4, fp32 embeddings/accuracy"),
    # lab 06: Olive's config path lands near the hand-made one; the CLI (loss on the whole
    # text) learns less of the tone in as many steps; QLoRA's adapter on its 4-bit base
    # against the same adapter merged into fp32 and rebuilt as ORT INT4
    ("06_olive_pipeline", "olive_vs_hand/Olive config (olive run)/accuracy",
     "olive_vs_hand/hand-made (PEFT, builder 0.18)/accuracy"),
    ("06_olive_pipeline", "olive_vs_hand/hand-made (PEFT, builder 0.18)/accuracy",
     "olive_vs_hand/Olive CLI (finetune + capture)/accuracy"),
    ("06_olive_pipeline", "qlora_accuracy_onnx_int4", "qlora_accuracy_4bit_pytorch"),
    # the CLI's whole-text loss, given 20x the steps
    ("06_olive_pipeline", "cli_long_curve/3000", "cli_long_curve/150"),
    ("07_tuning_and_evaluation", "best/accuracy", "best_rerun_other_seed_accuracy"),
    # what the search buys over lab 03's recipe (trial 0), on test
    ("07_tuning_and_evaluation", "best/accuracy", "sweep/0/accuracy"),
    ("07_tuning_and_evaluation", "custom_loss/class-weighted loss/surprise_recall",
     "custom_loss/default loss/surprise_recall"),
    ("07_tuning_and_evaluation", "custom_loss/class-weighted loss/macro_f1",
     "custom_loss/default loss/macro_f1"),
    ("08_peft_methods_compared", "methods/LoRA r 4/accuracy",
     "methods/full fine-tuning/accuracy"),
    ("08_peft_methods_compared", "methods/LoRA r 16/accuracy", "methods/LoRA r 4/accuracy"),
    ("08_peft_methods_compared", "methods/LoRA r 4/accuracy", "methods/IA3/accuracy"),
    ("08_peft_methods_compared", "methods/LoRA r 4/accuracy",
     "methods/bottleneck adapters/accuracy"),
    # the steps curve: what more steps buy a method at its own rate
    ("08_peft_methods_compared", "steps_curve/IA3/1000/accuracy", "steps_curve/IA3/100/accuracy"),
    ("08_peft_methods_compared", "steps_curve/prefix tuning/1000/accuracy",
     "steps_curve/prefix tuning/100/accuracy"),
    ("08_peft_methods_compared", "steps_curve/prompt tuning/1000/accuracy",
     "steps_curve/prompt tuning/100/accuracy"),
]


def numbers(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Every number in a metrics.json, keyed by its path ("runs/QLoRA, nf4 base/accuracy")."""
    found = {}
    for key, value in metrics.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            found.update(numbers(value, f"{path}/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found[path] = float(value)
    return found


def spread(values: list[float]) -> dict:
    return {"mean": round(statistics.fmean(values), 4),
            "std": round(statistics.stdev(values), 4) if len(values) > 1 else None,
            "min": min(values), "max": max(values), "n": len(values), "values": values}


def summarize(per_seed: dict[int, dict[str, dict]]) -> dict:
    """{lab: {figure: spread}} and the comparisons, from {seed: {lab: metrics}}."""
    figures: dict[str, dict[str, list[float]]] = {}
    for metrics_by_lab in per_seed.values():
        for lab, metrics in metrics_by_lab.items():
            for path, value in numbers(metrics).items():
                figures.setdefault(lab, {}).setdefault(path, []).append(value)
    comparisons = []
    for lab, a, b in COMPARISONS:
        pairs = [numbers(m[lab]) for m in per_seed.values() if lab in m]
        differences = [p[a] - p[b] for p in pairs if a in p and b in p]
        if differences:
            comparisons.append({"lab": lab, "a": a, "b": b, "a_minus_b": spread(differences),
                                "a_higher_on_every_seed": all(d > 0 for d in differences),
                                "b_higher_on_every_seed": all(d < 0 for d in differences)})
    return {"seeds": sorted(per_seed), "figures": {lab: {k: spread(v) for k, v in f.items()}
                                                   for lab, f in figures.items()},
            "comparisons": comparisons}


def stored_runs(runs_dir: Path) -> dict[int, dict[str, dict]]:
    """{seed: {lab: metrics}} of every lab run kept under runs_dir/seed_N (a failed run
    leaves no metrics.json: run_lab removes the old one first)."""
    per_seed: dict[int, dict[str, dict]] = {}
    for seed_dir in sorted(runs_dir.glob("seed_*")):
        if not seed_dir.name[5:].isdigit():
            continue
        for lab in LABS:
            metrics = seed_dir / lab / "metrics.json"
            found = saving.read_json(metrics, f"rerun lab {lab[:2]} for {seed_dir.name}")
            if found is not None:
                per_seed.setdefault(int(seed_dir.name[5:]), {})[lab] = found
    return per_seed


def variance_dir(jobs: int = COURSE_JOBS) -> Path:
    """Where the runs of `jobs` labs at a time go: runs of another thread count are other
    draws, kept apart from the default ones (`runs/variance`)."""
    if threads_per_job(jobs) == threads_per_job(COURSE_JOBS):
        return RUNS_DIR / "variance"
    return RUNS_DIR / f"variance_{threads_per_job(jobs)}threads"


def run(seeds: list[int], labs: list[str] | None = None, runs_dir: Path | None = None,
        labs_dir: Path = REPO_ROOT / "labs", jobs: int = COURSE_JOBS) -> dict:
    """Run `labs` (default: all of LABS) once per seed, `jobs` at a time; write and return
    the summary of every stored run to runs_dir + ".json" (runs/variance.json)."""
    labs = labs or list(LABS)
    runs_dir = runs_dir or variance_dir(jobs)
    # every (lab, seed) run in one pool, the longest labs first: two workers stay busy to
    # the end, instead of waiting for each seed's slowest lab
    notebooks = longest_first([labs_dir / f"{lab}.ipynb" for lab in labs], RUNS_DIR)
    print(f"{len(notebooks)} labs x {len(seeds)} seeds, {jobs} at a time, "
          f"{threads_per_job(jobs)} thread(s) each", flush=True)
    work = [(notebook, runs_dir / f"seed_{seed}", {"seed": seed, **LABS[notebook.stem]})
            for notebook in notebooks for seed in seeds]
    for number, ((notebook, _, parameters), outcome) in enumerate(
            run_pool(work, jobs, (Exception,)), start=1):
        seconds, status, _ = outcome
        print(f"[{number}/{len(work)}] {notebook.stem:26} seed {parameters['seed']}  "
              f"{seconds:6.1f} s  {status}", flush=True)
    result = summarize(stored_runs(runs_dir))
    path = runs_dir.with_suffix(".json")
    saving.write_json(path, result)
    print(markdown(result))
    print(f"written: {path}")
    return result


def markdown(result: dict) -> str:
    """The comparisons as a table: mean ± std of the per-seed difference, sign consistency."""
    lines = [f"Seeds {', '.join(map(str, result['seeds']))}.", "",
             "| lab | comparison (a − b) | mean ± std (points) | min … max "
             "| same sign on every seed |",
             "|---|---|---|---|---|"]
    for c in result["comparisons"]:
        d = c["a_minus_b"]
        std = "–" if d["std"] is None or math.isnan(d["std"]) else f"{100 * d['std']:.1f}"
        same = ("yes, a higher" if c["a_higher_on_every_seed"] else
                "yes, b higher" if c["b_higher_on_every_seed"] else "no")
        lines.append(f"| {c['lab'][:2]} | {c['a']} − {c['b']} | {100 * d['mean']:+.1f} ± {std} "
                     f"| {100 * d['min']:+.1f} … {100 * d['max']:+.1f} | {same} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Headline figures over seeds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--labs", nargs="+", metavar="NN",
                        help="only these labs, by number (default: all of " +
                             ", ".join(lab[:2] for lab in LABS) + ")")
    parser.add_argument("--jobs", type=int, default=COURSE_JOBS,
                        help="labs side by side (1: one at a time with every core's thread, "
                             "as a learner runs a lab)")
    parser.add_argument("--markdown", action="store_true", help="print the last run's table")
    args = parser.parse_args(argv)
    check_jobs(parser, args.jobs)
    if args.markdown:
        print(markdown(json.loads(variance_dir(args.jobs).with_suffix(".json").read_text())))
        return
    by_number = {lab[:2]: lab for lab in LABS}
    unknown = [n for n in args.labs or [] if n.zfill(2) not in by_number]
    if unknown:
        parser.error(f"no variance run for lab {', '.join(unknown)}; "
                     f"choose from {', '.join(by_number)}")
    run(args.seeds, [by_number[n.zfill(2)] for n in args.labs] if args.labs else None,
        jobs=args.jobs)


if __name__ == "__main__":
    main()
