"""The course report: every lab's headline figures (`runs/*/metrics.json`) in one page."""

import html
import json
from pathlib import Path

from slmlab import RUNS_DIR


def collect(runs_dir: Path = RUNS_DIR) -> dict[str, dict]:
    """{lab name: metrics} for every lab that wrote a metrics.json."""
    return {path.parent.name: json.loads(path.read_text())
            for path in sorted(runs_dir.glob("*/metrics.json"))}


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(json.dumps(value) if isinstance(value, dict | list) else str(value))


def write_report(runs_dir: Path = RUNS_DIR, failed: list[str] | tuple = ()) -> Path:
    """Write `runs_dir/report.html` (one table per lab, failed labs first) and return its path."""
    sections = [f"<h2 class='failed'>{html.escape(lab)}: FAILED</h2><p>No figures: the run "
                f"stopped with an error. The executed copy shows where: "
                f"<code>{html.escape(str(runs_dir / lab / (lab + '.ipynb')))}</code></p>"
                for lab in failed]
    for lab, metrics in collect(runs_dir).items():
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_cell(v)}</td></tr>"
                       for k, v in metrics.items())
        sections.append(f"<h2>{html.escape(lab)}</h2><table>{rows}</table>")
    body = "".join(sections) or "<p>No lab has written metrics yet.</p>"
    page = ("<!doctype html><meta charset='utf-8'><title>Course report</title>"
            "<style>body{font-family:sans-serif;margin:2em}td{padding:2px 12px;"
            "border-bottom:1px solid #ddd}.failed{color:#b00}</style><h1>Course report</h1>" + body)
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / "report.html"
    path.write_text(page)
    return path
