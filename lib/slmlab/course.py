"""Runs every lab with papermill into `runs/` and writes the course report.

`python -m slmlab.course` (what `make course` calls) executes each notebook of `labs/`
in order, with `output_dir` pointed at `runs/<lab>/`, shows progress, and then writes
`runs/report.html` from the labs' `metrics.json` files.
"""

import sys
import time
from pathlib import Path

import papermill

from slmlab import REPO_ROOT, RUNS_DIR
from slmlab.report import write_report


def run_lab(notebook: Path, runs_dir: Path = RUNS_DIR, **parameters) -> Path:
    """Execute one notebook with papermill; returns the executed copy's path."""
    out_dir = runs_dir / notebook.stem
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / notebook.name
    papermill.execute_notebook(
        str(notebook), str(executed), cwd=str(notebook.parent), progress_bar=False,
        parameters={"output_dir": str(out_dir), **parameters},
    )
    return executed


def run_course(labs_dir: Path = REPO_ROOT / "labs", runs_dir: Path = RUNS_DIR) -> Path:
    notebooks = sorted(labs_dir.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        sys.exit(f"no labs found in {labs_dir}")
    failed = []
    for number, notebook in enumerate(notebooks, start=1):
        print(f"[{number}/{len(notebooks)}] {notebook.stem} ...", flush=True)
        start = time.perf_counter()
        try:
            executed = run_lab(notebook, runs_dir)
            print(f"    done in {time.perf_counter() - start:.0f} s -> {executed}", flush=True)
        except papermill.PapermillExecutionError as error:
            failed.append(notebook.stem)
            print(f"    FAILED: {error.ename}: {error.evalue}", flush=True)
    report = write_report(runs_dir)
    print(f"report: {report}")
    if failed:
        sys.exit(f"labs that failed: {', '.join(failed)} (executed copies are in {runs_dir})")
    return report


if __name__ == "__main__":
    run_course()
