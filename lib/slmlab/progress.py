"""A learner's exercise table: per lab, which exercises are done, wrong or not started.

Every lab run writes `{output_dir}/exercises.json` (`exercises.record_to`); this reads the
last run of each lab in `labs/` and lists every exercise the notebook checks, so one that
the run never reached (it stopped earlier) shows as "not run". `--html PATH` writes the
table as a page an instructor can collect. `make progress` prints it; `make progress RUN=1`
first re-runs the labs edited since their last run (`python -m slmlab.course.runner --changed`).
"""

import argparse
import html
import json
import re
from pathlib import Path

from slmlab import REPO_ROOT, RUNS_DIR, saving
from slmlab.exercises import DONE, NOT_STARTED, WRONG

NOT_RUN = "not run"
STATUSES = (DONE, WRONG, NOT_STARTED, NOT_RUN)


def lab_exercises(notebook: Path) -> list[str]:
    """The names a notebook passes to `check(...)`, in order."""
    source = "".join("".join(cell["source"]) for cell in json.loads(notebook.read_text())["cells"]
                     if cell["cell_type"] == "code")
    return list(dict.fromkeys(re.findall(r"\bcheck\(\s*[\"'](\w+)[\"']", source)))


def lab_progress(notebook: Path, runs_dir: Path = RUNS_DIR) -> list[dict]:
    """[{exercise, status, message}] for one lab, from its last run in `runs_dir`."""
    record = runs_dir / notebook.stem / "exercises.json"
    outcomes = {o["exercise"]: o for o in saving.read_json(
        record, f"rerun {notebook.stem} to record its exercises") or []}
    return [outcomes.get(name, {"exercise": name, "status": NOT_RUN, "message": ""})
            for name in lab_exercises(notebook)]


def changed_labs(labs_dir: Path = REPO_ROOT / "labs", runs_dir: Path = RUNS_DIR) -> list[Path]:
    """Labs edited since their last run (or never run): what `course --changed` runs."""
    def stale(notebook: Path) -> bool:  # a run leaves exercises.json, papermill a copy too
        run = runs_dir / notebook.stem
        times = [p.stat().st_mtime for p in (run / "exercises.json", run / notebook.name)
                 if p.exists()]
        return not times or max(times) < notebook.stat().st_mtime

    return [n for n in sorted(labs_dir.glob("[0-9][0-9]_*.ipynb")) if stale(n)]


def collect(labs_dir: Path = REPO_ROOT / "labs", runs_dir: Path = RUNS_DIR) -> dict:
    """{lab: [{exercise, status, message}]} for every lab in `labs_dir`."""
    return {n.stem: lab_progress(n, runs_dir)
            for n in sorted(labs_dir.glob("[0-9][0-9]_*.ipynb"))}


def _counts(outcomes: list[dict]) -> dict[str, int]:
    return {status: sum(o["status"] == status for o in outcomes) for status in STATUSES}


def table(progress: dict) -> str:
    """The text table: one row per lab, then each wrong exercise's message."""
    lines = [f"{'lab':28} {'done':>4} {'wrong':>5} {'not started':>11} {'not run':>7}"]
    for lab, outcomes in progress.items():
        counts = _counts(outcomes)
        lines.append(f"{lab:28} {counts[DONE]:>4} {counts[WRONG]:>5} {counts[NOT_STARTED]:>11} "
                     f"{counts[NOT_RUN]:>7}")
    wrong = [(lab, o) for lab, outcomes in progress.items() for o in outcomes
             if o["status"] == WRONG]
    lines += [f"  {lab} / {o['exercise']}: {o['message']}" for lab, o in wrong]
    return "\n".join(lines)


def page(progress: dict) -> str:
    """The same table as a self-contained HTML page."""
    rows = "".join(
        f"<tr><td>{html.escape(lab)}</td>"
        + "".join(f"<td>{count}</td>" for count in _counts(outcomes).values())
        + "<td>" + "<br>".join(html.escape(f"{o['exercise']}: {o['message']}")
                               for o in outcomes if o["status"] == WRONG) + "</td></tr>"
        for lab, outcomes in progress.items())
    head = "".join(f"<th>{s}</th>" for s in ("lab", *STATUSES, "what is wrong"))
    return ("<!doctype html><meta charset='utf-8'><title>Exercise progress</title>"
            "<style>td,th{border:1px solid #999;padding:4px 8px}table{border-collapse:collapse}"
            f"</style><h1>Exercise progress</h1><table><tr>{head}</tr>{rows}</table>\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Your exercises: done, wrong, not started")
    parser.add_argument("--html", type=Path, help="also write the table as an HTML page")
    args = parser.parse_args(argv)
    table_now = collect()
    print(table(table_now))
    if args.html:
        args.html.write_text(page(table_now))
        print(f"written: {args.html}")


if __name__ == "__main__":
    main()
