"""Measured runs merged into docs/results.json: each `runs/variance*.json` (`make variance`),
`runs/real_width.json` (`make bench-width`) and `runs/bench.json` (`make bench`), stamped with
the conditions it ran under (CPU, AVX512, threads per lab, seeds, date). A figure or
comparison measured again replaces the stored one, so the file holds one current entry per
figure (older ones live in git). `results_page` renders the pages from the merged file.
"""

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

COURSE_JOBS = 2      # labs side by side in `make variance` and `make bench` (slmlab.course.runner)
TIMINGS_KEPT = 4     # newest runs kept per command: the time ranges the README quotes


def this_machine(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    """The CPU a run in runs/ was measured on: this one (runs/ is never shipped)."""
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                 if line.startswith("model name")), "unknown CPU")
    return {"cpu": name, "cores": os.cpu_count() or 1, "avx512": " avx512f" in text,
            "avx512_bf16": "avx512_bf16" in text}


def file_date(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).date().isoformat()


def variance_conditions(path: Path, summary: dict, machine: dict) -> dict:
    """Seeds, CPU, threads and command of one `make variance` summary. Its file name says
    the thread count: variance.json is two labs side by side, variance_<N>threads.json one
    lab at a time with N threads (`make variance JOBS=1`)."""
    threads = re.fullmatch(r"variance_(\d+)threads", path.stem)
    side_by_side = 1 if threads else COURSE_JOBS
    per_lab = int(threads.group(1)) if threads else max(1, machine["cores"] // COURSE_JOBS)
    return {"seeds": summary.get("seeds", []), **machine, "threads_per_lab": per_lab,
            "labs_side_by_side": side_by_side,
            "command": "make variance JOBS=1" if threads else "make variance",
            "date": file_date(path)}


def merge_variance(results: dict, summary: dict, conditions: dict) -> None:
    """Put every figure and comparison of a variance summary into `results`, replacing the
    stored entry of the same key."""
    for lab, figures in summary.get("figures", {}).items():
        for path, spread in figures.items():
            results["figures"].setdefault(lab, {})[path] = {**spread, "conditions": conditions}
    stored = {(c["lab"], c["a"], c["b"]): i for i, c in enumerate(results["comparisons"])}
    for entry in summary.get("comparisons", []):
        entry = {**entry, "conditions": conditions}
        key = (entry["lab"], entry["a"], entry["b"])
        if key in stored:
            results["comparisons"][stored[key]] = entry
        else:
            results["comparisons"].append(entry)


def merge_bench(results: dict, bench: dict, date: str) -> None:
    """Add a `make bench` run to the timings, keeping the newest TIMINGS_KEPT per command."""
    machine = dict(bench.get("machine", {}))
    side_by_side = machine.pop("labs_side_by_side", COURSE_JOBS)
    conditions = {"cpu": machine.get("cpu"), "cores": machine.get("cores"),
                  "avx512": machine.get("avx512"), "avx512_bf16": machine.get("avx512_bf16"),
                  "threads_per_lab": max(1, (machine.get("cores") or 1) // side_by_side),
                  "labs_side_by_side": side_by_side, "date": date}
    command = "make bench" + (" JOBS=1" if side_by_side == 1 else "")
    run = {"command": command, **{k: v for k, v in bench.items() if k != "machine"},
           "conditions": conditions}
    timings = [t for t in results.setdefault("timings", []) if t != run] + [run]
    same = [t for t in timings if t["command"] == command]
    results["timings"] = [t for t in timings
                          if t["command"] != command or t in same[-TIMINGS_KEPT:]]


def merge_runs(results: dict, runs_dir: Path, machine: dict | None = None) -> list[Path]:
    """Merge every variance summary (oldest first, so the newest wins) and the bench run
    found in runs_dir; returns the files merged."""
    machine = machine or this_machine()
    merged = []
    for path in sorted(runs_dir.glob("variance*.json"), key=lambda p: p.stat().st_mtime):
        summary = json.loads(path.read_text())
        merge_variance(results, summary, summary.get("conditions")
                       or variance_conditions(path, summary, machine))
        merged.append(path)
    width = runs_dir / "real_width.json"
    if width.exists():  # `make bench-width`: one run, replaced by the next
        conditions = {**machine, "command": "make bench-width", "date": file_date(width)}
        results["real_width"] = {**json.loads(width.read_text()), "conditions": conditions}
        merged.append(width)
    bench = runs_dir / "bench.json"
    if bench.exists():
        merge_bench(results, json.loads(bench.read_text()), file_date(bench))
        merged.append(bench)
    return merged
