"""The course report: one page to read top to bottom after `make course`.

Headline targets first (claim, target, measured, met or missed), then each lab's plots
(embedded, so the page stands alone), run time, peak memory and a link to its executed
notebook, the exercise progress of the run, the machine and library versions, and every
figure of each `metrics.json` last. Written as `runs/report.html` and `runs/report.md`.
"""

import base64
import html
import json
from pathlib import Path

from slmlab import REPO_ROOT, RUNS_DIR, saving

RUN_FILE = "run.json"  # what the course runner measured from outside the lab (course.py)


def collect(runs_dir: Path = RUNS_DIR) -> dict[str, dict]:
    """{lab name: metrics} for every lab that wrote a metrics.json."""
    found = {path.parent.name: saving.read_json(path, f"rerun lab {path.parent.name[:2]}")
             for path in sorted(runs_dir.glob("*/metrics.json"))}
    return {lab: metrics for lab, metrics in found.items() if metrics is not None}


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(json.dumps(value) if isinstance(value, dict | list) else str(value))


def last_run_seconds(runs_dir: Path, lab: str) -> float | None:
    """The lab's last run time as papermill recorded it in the executed copy, or None when
    there is no readable one (never run, or a run killed before papermill saved it)."""
    try:
        executed = json.loads((runs_dir / lab / f"{lab}.ipynb").read_text())
        return executed["metadata"]["papermill"]["duration"] or 0.0
    except (OSError, ValueError, KeyError, TypeError):
        return None


def peak_memory_mb(runs_dir: Path, lab: str) -> float | None:
    """Peak RSS of the lab's kernel and its subprocesses in its last `make course` run."""
    try:
        return json.loads((runs_dir / lab / RUN_FILE).read_text())["peak_rss_mb"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _targets_rows(figures: dict[str, dict]) -> list[tuple]:
    return [(lab, t["claim"], t["target"], t["measured"], "met" if t["met"] else "MISSED")
            for lab, metrics in figures.items() for t in metrics.get("targets", [])]


def _machine() -> dict:
    from slmlab import environment  # here: it imports torch

    machine = environment.describe()
    return {"CPU cores": machine["cpu_cores"], "memory (GB)": machine["memory_total_gb"],
            "device": machine["device"], "python": machine["python"],
            **environment.package_versions()}


def _table(head: tuple, rows: list[tuple]) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
                    for row in rows)
    return ("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
            + cells + "</table>")


def _lab_section(runs_dir: Path, lab: str, metrics: dict) -> str:
    seconds, memory = last_run_seconds(runs_dir, lab), peak_memory_mb(runs_dir, lab)
    plots = "".join(f"<img alt='{html.escape(p.name)}' src='data:image/png;base64,"
                    f"{base64.b64encode(p.read_bytes()).decode()}'>"
                    for p in sorted((runs_dir / lab).glob("*.png")))
    figures = _table(("figure", "value"), [(k, v) for k, v in metrics.items() if k != "targets"])
    return (f"<h3>{html.escape(lab)}</h3><p>run time: "
            f"{'–' if seconds is None else f'{seconds:.0f} s'} · peak memory: "
            f"{'–' if memory is None else f'{memory:.0f} MB'} · "
            f"<a href='{html.escape(lab)}/{html.escape(lab)}.ipynb'>executed notebook</a></p>"
            f"{plots}<details><summary>every figure</summary>{figures}</details>")


def write_report(runs_dir: Path = RUNS_DIR, failed: list[str] | tuple = (),
                 labs_dir: Path = REPO_ROOT / "labs") -> Path:
    """Write `runs_dir/report.html` and `report.md`; return the HTML page's path."""
    from slmlab import progress  # here: it imports the exercise checks (torch)

    figures = collect(runs_dir)
    targets = _targets_rows(figures)
    exercise_table = progress.table(progress.collect(labs_dir, runs_dir))
    failures = "".join(f"<p class='failed'>{html.escape(lab)}: FAILED — no figures; the "
                       f"executed copy shows where: <a href='{html.escape(lab)}/"
                       f"{html.escape(lab)}.ipynb'>{html.escape(lab)}.ipynb</a></p>"
                       for lab in failed)
    head = ("lab", "claim", "target", "measured", "")
    page = ("<!doctype html><meta charset='utf-8'><title>Course report</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:70em}td,th{padding:2px 10px;"
            "border-bottom:1px solid #ddd;text-align:left}.failed{color:#b00}"
            "img{max-width:32em;margin:4px}</style><h1>Course report</h1>" + failures
            + "<h2>Headline targets</h2>"
            + (_table(head, targets) if targets else "<p>No lab has reported targets yet.</p>")
            + "<h2>Labs</h2>"
            + "".join(_lab_section(runs_dir, lab, m) for lab, m in figures.items())
            + f"<h2>Exercises</h2><pre>{html.escape(exercise_table)}</pre>"
            + "<h2>Machine and libraries</h2>" + _table(("", ""), list(_machine().items())))
    markdown = "\n".join(
        ["# Course report", "", *(f"- **{lab}: FAILED**" for lab in failed), "",
         "| lab | claim | target | measured | |", "|---|---|---|---|---|",
         *(f"| {lab} | {claim} | {target} | {measured:.4g} | {met} |"
           for lab, claim, target, measured, met in targets),
         "", "```", exercise_table, "```", ""])
    runs_dir.mkdir(parents=True, exist_ok=True)
    (runs_dir / "report.md").write_text(markdown)
    path = runs_dir / "report.html"
    path.write_text(page)
    return path
