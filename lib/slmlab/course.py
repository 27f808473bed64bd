"""Runs every lab with papermill into `runs/` and writes the course report.

`python -m slmlab.course` (what `make course` calls) executes each notebook of `labs/`
in order, with `output_dir` pointed at `runs/<lab>/`, shows progress, and then writes
`runs/report.html` from the labs' `metrics.json` files. `--quick` runs every lab with
`QUICK_PARAMETERS` instead: a few training steps each and the headline checks off, to
see in a few minutes that every lab runs end to end (the test suite runs labs/ this way).
"""

import sys
import tempfile
import time
from pathlib import Path

import papermill
from traitlets.config import Config

from slmlab import REPO_ROOT, RUNS_DIR
from slmlab.report import write_report

# Each lab's smallest end-to-end run: every cell executes, exercises fall back to the
# reference, metrics.json is written; only the headline asserts (which need the full
# training budget) are off.
QUICK_PARAMETERS: dict[str, dict] = {
    "00_setup_tour": {"max_new_tokens": 8},
    "01_distillation": {"teacher_steps": 6, "student_steps": 6, "n_synthetic": 40,
                        "check_headlines": False},
    "02_loralib_layer_swaps": {"steps": 6, "check_headlines": False},
    "03_peft_lora_sft": {"max_steps": 6, "interrupt_at": 3, "compare_ranks": [8],
                         "chat_steps": 3, "check_headlines": False},
    "04_qlora": {"steps": 6, "check_headlines": False},
    "05_merge_int4_export": {"train_steps": 6, "parity_prompts": 3, "new_tokens": 8,
                             "check_headlines": False},
    "06_olive_pipeline": {"olive_steps": 6, "cli_steps": 6, "adapter_steps": 6,
                          "qlora_steps": 6, "new_tokens": 8, "check_headlines": False},
    "07_tuning_and_evaluation": {"trials": 2, "trial_steps": 6, "overfit_steps": 20,
                                 "custom_loss_steps": 6, "check_headlines": False},
    "08_peft_methods_compared": {"steps": 6, "lora_ranks": [2, 4], "check_headlines": False},
}


def run_lab(notebook: Path, runs_dir: Path = RUNS_DIR, **parameters) -> Path:
    """Execute one notebook with papermill; returns the executed copy's path."""
    out_dir = runs_dir / notebook.stem
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / notebook.name
    with tempfile.TemporaryDirectory(prefix="slmlab-kernel-") as sockets:
        # local IPC sockets: no TCP port, and no "running over TCP without encryption"
        # warning from every kernel
        kernel = Config({"KernelManager": {"transport": "ipc", "ip": f"{sockets}/kernel"}})
        papermill.execute_notebook(
            str(notebook), str(executed), cwd=str(notebook.parent), progress_bar=False,
            parameters={"output_dir": str(out_dir), **parameters}, config=kernel,
        )
    return executed


def run_labs(notebooks: list[Path], runs_dir: Path = RUNS_DIR, quick: bool = False,
             tolerate: tuple[type[BaseException], ...] = (papermill.PapermillExecutionError,),
             ) -> tuple[dict[str, float], list[str]]:
    """Run `notebooks` in order, one progress line each; a lab that fails with an error in
    `tolerate` is reported and the next one runs. Returns (seconds per lab, failed labs)."""
    seconds, failed = {}, []
    for number, notebook in enumerate(notebooks, start=1):
        print(f"[{number}/{len(notebooks)}] {notebook.stem:26} ", end="", flush=True)
        start = time.perf_counter()
        try:
            parameters = QUICK_PARAMETERS.get(notebook.stem, {}) if quick else {}
            status = f"done -> {run_lab(notebook, runs_dir, **parameters)}"
        except tolerate as error:
            failed.append(notebook.stem)
            status = (f"FAILED: {getattr(error, 'ename', type(error).__name__)}: "
                      f"{getattr(error, 'evalue', error)}")
        seconds[notebook.stem] = round(time.perf_counter() - start, 1)
        print(f"{seconds[notebook.stem]:6.1f} s  {status}", flush=True)
    return seconds, failed


def run_course(labs_dir: Path = REPO_ROOT / "labs", runs_dir: Path = RUNS_DIR,
               quick: bool = False) -> Path:
    notebooks = sorted(labs_dir.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        sys.exit(f"no labs found in {labs_dir}")
    _, failed = run_labs(notebooks, runs_dir, quick)
    report = write_report(runs_dir)
    print(f"report: {report}")
    if failed:
        sys.exit(f"labs that failed: {', '.join(failed)} (executed copies are in {runs_dir})")
    return report


if __name__ == "__main__":
    if "--quick" in sys.argv:
        run_course(runs_dir=RUNS_DIR / "quick", quick=True)
    else:
        run_course()
