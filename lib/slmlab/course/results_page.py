"""`make results`: merge measured runs into docs/results.json, then render the pages from it.

`python -m slmlab.course.results_page` merges every run present in runs/
(`results_merge.merge_runs`) into `docs/results.json`, then writes `docs/results.md` and
the generated blocks of README.md and docs/instructor_guide.md (between
`<!-- NAME:begin -->` and `<!-- NAME:end -->`) from that file. With no runs present it only
re-renders. Every file is written to a temporary name and renamed, so an interrupted run
leaves the old one whole.
"""

import argparse
import json
import math
import re
from collections.abc import Callable
from pathlib import Path

from slmlab import REPO_ROOT, RUNS_DIR, saving
from slmlab import results as res
from slmlab.course import course_map as cmap
from slmlab.course.results_merge import merge_runs

RESULTS_PAGE = REPO_ROOT / "docs" / "results.md"
README = REPO_ROOT / "README.md"
INSTRUCTOR_GUIDE = REPO_ROOT / "docs" / "instructor_guide.md"
# README's "What to expect": (lab, a, b or None for a figure, what it says)
HEADLINES = [
    ("03_peft_lora_sft", "accuracy_after", None, "LoRA on the teacher: held-out accuracy"),
    ("02_loralib_layer_swaps", "accuracy_after", "accuracy_before",
     "LoRA by hand: accuracy gained (points)"),
    ("01_distillation", "student (KD)_accuracy", "student (hard labels)_accuracy",
     "KD student − hard-label student (points)"),
    ("04_qlora", "runs/LoRA, fp32 base/accuracy", "runs/QLoRA, nf4 base/accuracy",
     "fp32 LoRA − QLoRA (points)"),
    ("05_merge_int4_export", "results/PyTorch fp32/accuracy", "results/ONNX int4/accuracy",
     "PyTorch fp32 − ONNX INT4 (points)"),
    ("06_olive_pipeline", "olive_vs_hand/Olive config (olive run)/accuracy",
     "olive_vs_hand/hand-made (PEFT, builder 0.18)/accuracy",
     "Olive config − hand-made path, INT4 (points)"),
    ("07_tuning_and_evaluation", "custom_loss/class-weighted loss/surprise_recall",
     "custom_loss/default loss/surprise_recall",
     "rare-class recall, class-weighted − default loss (points)"),
    ("08_peft_methods_compared", "methods/LoRA r 4/accuracy", "methods/IA3/accuracy",
     "LoRA r 4 − IA3, 100 steps, each at its best rate (points)"),
]


# ---- rendering ----------------------------------------------------------------------

def conditions_line(c: dict) -> str:
    """"Intel(R) Xeon(R) Processor, 2 cores, AVX512; 1 thread per lab, 2 labs side by side;
    seeds 0–4; `make variance LABS=06`; 2026-12-03"."""
    parts = [f"{c.get('cpu')}, {c.get('cores')} cores, "
             f"{'AVX512' if c.get('avx512') else 'no AVX512'}",
             f"{c.get('threads_per_lab')} thread{'s' if c.get('threads_per_lab') != 1 else ''}"
             f" per lab, {c.get('labs_side_by_side')} lab"
             f"{'s' if c.get('labs_side_by_side') != 1 else ''} at a time"]
    if c.get("seeds"):
        parts.append(f"seeds {res._seeds_text(c['seeds'])}")
    if c.get("command"):
        parts.append(f"`{c['command']}`")
    if c.get("what"):
        parts.append(c["what"])
    parts.append(f"measured {c.get('date') or 'on an unrecorded date'}")
    return "; ".join(parts)


def is_fraction_figure(path: str) -> bool:
    """Accuracies, recalls and F1 are fractions, shown as %; seconds, losses, perplexity,
    BLEU, sizes and ratios are shown as they are."""
    name = path.rsplit("/", 1)[-1]
    return bool(re.search(r"accuracy|recall|f1", name)) and not re.search(
        r"points|percent|seconds", name)


def grouped(entries: list[tuple[str, dict]]) -> list[tuple[dict, list[tuple[str, dict]]]]:
    """Entries grouped by their conditions, in first-seen order."""
    groups: list[tuple[dict, list]] = []
    for name, entry in entries:
        for conditions, members in groups:
            if conditions == entry["conditions"]:
                members.append((name, entry))
                break
        else:
            groups.append((entry["conditions"], [(name, entry)]))
    return groups


def spread_cells(spread: dict, scale: float, sign: bool, decimals: int | None) -> list[str]:
    mean_std = res._number(spread["mean"], scale, sign, decimals)
    if spread.get("std") is not None:
        mean_std += f" ± {res._number(spread['std'], scale, False, decimals)}"
    if spread.get("min") is None or spread.get("max") is None:
        return [mean_std, "–"]
    return [mean_std, f"{res._number(spread['min'], scale, sign, decimals)} … "
                      f"{res._number(spread['max'], scale, sign, decimals)}"]


def same_sign(entry: dict) -> str:
    return ("yes, a higher" if entry["a_higher_on_every_seed"] else
            "yes, b higher" if entry["b_higher_on_every_seed"] else "no")


def lab_title(stem: str) -> str:
    try:
        return f"Lab {stem[:2]} — {cmap.lab(stem).title}"
    except KeyError:
        return stem


def render_page(results: dict) -> str:
    """docs/results.md: per lab, one table per set of conditions; then the run times."""
    lines = ["# Results", "",
             "Generated by `make results` from [`results.json`](results.json); do not edit by "
             "hand. Each table states the CPU, threads, seeds and date it was measured with. "
             "Accuracies are held-out test accuracy in %; a comparison a − b is the paired "
             "per-seed difference in points; *same sign* says whether a (or b) was higher on "
             "every seed. Another CPU or thread count draws other figures for the same seeds.",
             ""]
    labs = sorted(set(results["figures"]) | {c["lab"] for c in results["comparisons"]})
    for lab in labs:
        lines += [f"## {lab_title(lab)}", ""]
        comparisons = [(f"{c['a']} − {c['b']}", c) for c in results["comparisons"]
                       if c["lab"] == lab]
        for conditions, members in grouped(comparisons):
            lines += [f"Comparisons — {conditions_line(conditions)}.", "",
                      "| a − b | mean ± std (points) | min … max | same sign on every seed |",
                      "|---|---|---|---|"]
            lines += [f"| {name} | " + " | ".join(spread_cells(c["a_minus_b"], 100, True, 1))
                      + f" | {same_sign(c)} |" for name, c in members]
            lines.append("")
        figures = list(results["figures"].get(lab, {}).items())
        for conditions, members in grouped(figures):
            lines += [f"Figures — {conditions_line(conditions)}.", "",
                      "| figure | mean ± std | min … max | n |", "|---|---|---|---|"]
            for path, spread in members:
                percent = is_fraction_figure(path)
                cells = spread_cells(spread, 100 if percent else 1, False, 1 if percent else None)
                lines.append(f"| {path}{' (%)' if percent else ''} | {' | '.join(cells)} "
                             f"| {spread.get('n', '')} |")
            lines.append("")
    if "real_width" in results:
        lines += ["## Lab 05's export at Phi-3-mini's width", "",
                  "A Phi-3-mini-shaped model with random weights, exported as lab 05 exports "
                  "(`python -m slmlab.course.real_width`); sizes extrapolated to 32 decoder "
                  "layers:", "",
                  "```", res.describe_real_width(results), "```", ""]
    lines += render_timings(results)
    return "\n".join(lines).rstrip() + "\n"


def render_timings(results: dict) -> list[str]:
    timings = results.get("timings", [])
    if not timings:
        return []
    lines = ["## Run times", "",
             "Seconds per lab and for the whole command, fresh runs with an empty artifact "
             "cache; each row is one run (the newest few per command are kept, and the README "
             "quotes their range). Times follow the CPU's speed and load, so compare rows "
             "only under like conditions.", ""]
    labs = [lab.stem for lab in cmap.LABS]
    lines += ["| command | conditions | " + " | ".join(s[:2] for s in labs) + " | total |",
              "|---|---|" + "---|" * (len(labs) + 1)]
    for run in timings:
        total = run.get("course_seconds", run.get("test_seconds"))
        per_lab = [str(run.get("lab_seconds", {}).get(s, "")) for s in labs]
        lines.append(f"| `{run['command']}` | {conditions_line(run['conditions'])} | "
                     + " | ".join(per_lab) + f" | {'' if total is None else total} s |")
    bench = [t for t in timings if t["command"].startswith("make bench")]
    if bench:
        lines += ["", f"Last `{bench[-1]['command']}` run "
                      f"({conditions_line(bench[-1]['conditions'])}):",
                  "", "| figure | value |", "|---|---|"]
        lines += [f"| `{k}` | {v} |" for k, v in bench[-1].items()
                  if k not in ("command", "conditions", "lab_seconds")]
    return lines + [""]


def headline_table(results: dict) -> str:
    """README's "What to expect" table from results.json."""
    rows, conditions = [], []
    for lab, a, b, label in HEADLINES:
        if b is None:
            entry = res.figure(lab, a, results)
            cells = spread_cells(entry, 100, False, 1)
            cells[0] += " %"
        else:
            entry = res.comparison(lab, a, b, results)
            cells = spread_cells(entry["a_minus_b"], 100, True, 1)
        conditions.append(entry["conditions"])
        rows.append(f"| [{lab[:2]}](labs/{lab}.ipynb) | {label} | {cells[0]} | {cells[1]} "
                    f"| {entry['conditions'].get('threads_per_lab')} |")
    seeds = sorted({res._seeds_text(c["seeds"]) for c in conditions})
    cpus = sorted({f"{c['cores']}-core {'AVX512' if c['avx512'] else 'non-AVX512'} CPU "
                   f"({c['cpu']})" for c in conditions})
    dates = sorted({c.get("date") or "?" for c in conditions})
    return "\n".join([
        "| lab | figure | mean ± std over seeds | min … max | threads per lab |",
        "|---|---|---|---|---|", *rows, "",
        f"Seeds {', '.join(seeds)} on a {'; '.join(cpus)}, measured "
        f"{dates[0] if len(dates) == 1 else dates[0] + ' to ' + dates[-1]}. "
        "Every figure with its command and conditions: [docs/results.md](docs/results.md)."])


def time_range(results: dict, commands: tuple[str, ...], key: str) -> str:
    seconds = [t[key] for t in results.get("timings", [])
               if t["command"].split(" JOBS")[0] in commands and t.get(key) is not None]
    if not seconds:
        return "not measured yet"
    low, high = math.floor(min(seconds) / 60), math.ceil(max(seconds) / 60)
    return f"about {high} min" if low >= high else f"{low}–{high} min"


def times_block(results: dict) -> str:
    """README's quick-start times: measured ranges of `make course` and `make test`."""
    cores = {t["conditions"].get("cores") for t in results.get("timings", [])} - {None}
    where = f"on a {min(cores)}-core CPU" if cores else "on a laptop CPU"
    course = time_range(results, ("make course", "make bench"), "course_seconds")
    test = time_range(results, ("make test", "make bench"), "test_seconds")
    return (f"Measured {where}: `make course` {course} of labs (plus the install on a fresh "
            f"clone), `make test` {test}; a busier or "
            "slower machine can take twice as long ([run times](docs/results.md#run-times)).")


def course_map_block(results: dict, link_prefix: str = "") -> str:
    """The course map table: linked lab names, the lesson, compute and working time."""
    lines = ["| # | lab | you learn | compute | your time |", "|---|---|---|---|---|"]
    for lab in cmap.LABS:
        lines.append(f"| {lab.number} | [{lab.title}]({link_prefix}labs/{lab.stem}.ipynb) | "
                     f"{lab.learn} | {cmap.compute_text(lab.stem, results)} | "
                     f"{cmap.working_text(lab.stem)} |")
    return "\n".join(lines)


def replace_block(text: str, name: str, render: Callable[[], str]) -> str:
    """`text` with what sits between <!-- name:begin --> and <!-- name:end --> replaced by
    render() (called only when the markers are there)."""
    pattern = re.compile(rf"(<!-- {name}:begin -->)\n.*?(<!-- {name}:end -->)", re.DOTALL)
    if not pattern.search(text):
        return text
    body = render()
    return pattern.sub(lambda m: f"{m.group(1)}\n{body}\n{m.group(2)}", text)


def render_blocks(text: str, results: dict, link_prefix: str = "") -> str:
    text = replace_block(text, "results", lambda: headline_table(results))
    text = replace_block(text, "times", lambda: times_block(results))
    return replace_block(text, "course-map", lambda: course_map_block(results, link_prefix))


def update(results_file: Path = res.RESULTS_FILE, runs_dir: Path = RUNS_DIR,
           page: Path = RESULTS_PAGE, readme: Path = README,
           guide: Path | None = INSTRUCTOR_GUIDE, machine: dict | None = None) -> list[Path]:
    """Merge the runs into results_file, then write the results page and the generated
    blocks; returns the run files merged."""
    results = res.load(results_file)
    merged = merge_runs(results, runs_dir, machine) if runs_dir.exists() else []
    if merged:
        saving.write_text(results_file, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    saving.write_text(page, render_page(results))
    for path, prefix in ((readme, ""), (guide, "../")):
        if path is not None and path.exists():
            text = path.read_text(encoding="utf-8")
            new = render_blocks(text, results, prefix)
            if new != text:
                saving.write_text(path, new)
    return merged


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Merge runs/ into docs/results.json and "
                                                 "render docs/results.md")
    parser.add_argument("--runs", type=Path, default=RUNS_DIR)
    args = parser.parse_args(argv)
    merged = update(runs_dir=args.runs)
    for path in merged:
        print(f"merged: {path}")
    print(f"written: {RESULTS_PAGE}" + (f", {res.RESULTS_FILE}" if merged else ""))


if __name__ == "__main__":
    main()
