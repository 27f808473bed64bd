"""Runs every lab with papermill into `runs/` and writes the course report.

`python -m slmlab.course.runner` (what `make course` calls) executes each notebook of `labs/`
in order, with `output_dir` pointed at `runs/<lab>/`, shows progress, and then writes
`runs/report.html` from the labs' `metrics.json` files. `--quick` runs every lab with
`QUICK_PARAMETERS` instead: a few training steps each and the headline checks off, to
see in a few minutes that every lab runs end to end (the test suite runs labs/ this way).
"""

import argparse
import contextlib
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import papermill
from traitlets.config import Config

from slmlab import REPO_ROOT, RUNS_DIR, saving
from slmlab.course.report import RUN_FILE, last_run_seconds, write_report
from slmlab.course.tree_memory import TreeMemory

# Each lab's smallest end-to-end run: every cell executes, exercises fall back to the
# reference, metrics.json is written. The headline targets (which need the full training
# budget) are reported, not asserted, as for any run off the defaults (slmlab.parameters).
# Where a lab takes any model, the quick run uses the zoo's student: a model of another
# shape than the teacher the solutions run with (which shows the lab does not depend on
# one), and a few times less compute. Labs 05 and 06 export to ORT-GenAI, which cannot
# run the student's head size (export.export_problem); lab 01 uses both already.
QUICK_MODEL = {"model_id": "tiny-phi3-student"}
QUICK_PARAMETERS: dict[str, dict] = {
    "00_setup_tour": {"max_new_tokens": 8},   # tests/test_papermill.py runs it with the student
    "01_distillation": {"teacher_steps": 6, "student_steps": 6, "n_synthetic": 40},
    # its opt-in comparison too: the solutions run only the default path
    "02_loralib_layer_swaps": {"steps": 6, "train_choices": True, **QUICK_MODEL},
    "03_peft_lora_sft": {"max_steps": 6, "interrupt_at": 3, "compare_ranks": [8],
                         "chat_steps": 3, **QUICK_MODEL},
    "04_qlora": {"steps": 6, **QUICK_MODEL},
    "05_merge_int4_export": {"train_steps": 6, "parity_prompts": 3, "new_tokens": 8},
    "06_olive_pipeline": {"olive_steps": 6, "cli_steps": 6, "adapter_steps": 6,
                          "qlora_steps": 6, "new_tokens": 8},
    "07_tuning_and_evaluation": {"trials": 2, "trial_steps": 6, "overfit_steps": 20,
                                 "custom_loss_steps": 6, "plateau_steps": 3, **QUICK_MODEL},
    "08_peft_methods_compared": {"steps": 6, "lora_ranks": [2, 4], **QUICK_MODEL},
}


# Seconds a cell may run before papermill stops the lab, if set (the test suite sets it: a
# kernel that never answers then fails one test instead of hanging the suite). Unset for
# learners: a cell on a real Phi-3-mini may rightly run for hours.
CELL_TIMEOUT_VARIABLE = "SLMLAB_CELL_TIMEOUT"


def run_lab(notebook: Path, runs_dir: Path = RUNS_DIR, **parameters) -> Path:
    """Execute one notebook with papermill; returns the executed copy's path."""
    timeout = os.environ.get(CELL_TIMEOUT_VARIABLE)
    out_dir = runs_dir / notebook.stem
    out_dir.mkdir(parents=True, exist_ok=True)
    # an earlier run's figures must not outlive a failed re-run (the report reads them)
    (out_dir / "metrics.json").unlink(missing_ok=True)
    executed = out_dir / notebook.name
    with tempfile.TemporaryDirectory(prefix="slmlab-kernel-") as sockets:
        # local IPC sockets: no TCP port, and no "running over TCP without encryption"
        # warning from every kernel
        kernel = Config({"KernelManager": {"transport": "ipc", "ip": f"{sockets}/kernel"}})
        papermill.execute_notebook(
            str(notebook), str(executed), cwd=str(notebook.parent), progress_bar=False,
            parameters={"output_dir": str(out_dir), **parameters}, config=kernel,
            execution_timeout=int(timeout) if timeout else None,
        )
    return executed


def _failure(error: BaseException) -> str:
    return (f"FAILED: {getattr(error, 'ename', type(error).__name__)}: "
            f"{getattr(error, 'evalue', error)}")


def stderr_log(runs_dir: Path, lab: str) -> Path:
    """Where what a lab's run writes to stderr goes: beside the lab's folder, not in it
    (the lab empties its folder when it starts, and refuses one with files it did not
    write)."""
    return runs_dir / f"{lab}.stderr.log"


@contextlib.contextmanager
def stderr_to(path: Path):
    """Point this process's stderr (file descriptor 2, which a lab's kernel and its
    subprocesses inherit) at `path`, emptied first, for the block; an empty file is removed
    afterwards.

    A cell's output is in the notebook already; what reaches fd 2 is the kernel's own log
    (jupyter_client interrupts every kernel it shuts down, which can log "KeyboardInterrupt
    caught in kernel") and child processes' progress bars: kept beside the lab's folder, out of
    the runner's one line per lab."""
    sys.stderr.flush()
    terminal = os.dup(2)
    with open(path, "wb") as log:  # this run's lines only
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(terminal, 2)
        os.close(terminal)
        if path.exists() and path.stat().st_size == 0:
            path.unlink()


def timed_lab(notebook: Path, runs_dir: Path, parameters: dict, threads: int | None,
              tolerate: tuple[type[BaseException], ...]) -> tuple[float, str, bool]:
    """(seconds, status line, ok) of one lab; runs in the caller or in a pool worker."""
    if threads:  # the kernel papermill starts inherits the environment
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    log = stderr_log(runs_dir, notebook.stem)
    runs_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    # the lab's kernel and its subprocesses
    with TreeMemory(include_self=False) as memory, stderr_to(log):
        try:
            status, ok = f"done -> {run_lab(notebook, runs_dir, **parameters)}", True
        except tolerate as error:  # reported as text: papermill's errors do not pickle
            status, ok = _failure(error), False
    if not ok and log.exists():
        status += f" (its stderr: {log})"
    seconds = round(time.perf_counter() - start, 1)
    saving.write_json(runs_dir / notebook.stem / RUN_FILE,
                      {"seconds": seconds, "peak_rss_mb": round(memory.peak_mb), "ok": ok})
    return seconds, status, ok


# A fresh clone has no earlier run to time: labs 03 and 06 first, then the others by their
# seconds in the newest run docs/results.json records, longest first. Lab 03 trains its recipe's
# adapter about a minute in and shares it through the cache (`sft.share_adapter`), before
# labs 01 and 04-06 ask for it: none of them trains it again. Lab 06 beside it asks only
# after its two Olive runs (~2.5 min in), and it ends before lab 08 starts: the two labs with
# the highest peak memory (~2.9 and ~2.0 GB) do not run side by side (07 beside 03 took the
# course to 6,968 MB; 06 beside 03 to 5,648 MB). Only the order matters (a lab not listed
# comes after them).
STARTS_FIRST = ("03", "06")
FIRST_RUN_ORDER = (*STARTS_FIRST, "07", "08", "04", "01", "02", "05", "00")


def longest_first(notebooks: list[Path], runs_dir: Path) -> list[Path]:
    """Labs ordered by their last run's duration (papermill records it), longest first, so
    two workers finish together; labs never run go first, in `FIRST_RUN_ORDER`."""
    def order(notebook: Path) -> tuple:
        seconds = last_run_seconds(runs_dir, notebook.stem)
        number = notebook.stem[:2]
        first_run = (FIRST_RUN_ORDER.index(number) if number in FIRST_RUN_ORDER
                     else len(FIRST_RUN_ORDER))
        return (seconds is not None, -(seconds or 0.0), first_run, notebook.stem)
    return sorted(notebooks, key=order)


def run_labs(notebooks: list[Path], runs_dir: Path = RUNS_DIR, quick: bool = False,
             tolerate: tuple[type[BaseException], ...] = (papermill.PapermillExecutionError,),
             jobs: int = 1, parameters: dict[str, dict] | None = None,
             ) -> tuple[dict[str, float], list[str]]:
    """Run `notebooks`, one progress line per lab; a lab that fails with an error in
    `tolerate` is reported and the others run. Returns (seconds per lab, failed labs).

    `parameters` maps a lab's name to papermill parameters (over the quick ones if `quick`).

    `jobs` > 1 runs that many labs at once, sharing the cores' threads: much of a lab is
    single-threaded (kernel start, imports, Olive subprocesses, ONNX builds), so on 2
    cores two labs side by side with one thread each end sooner than one after the other
    with two threads.
    Labs share only the artifact cache, whose entries are written atomically.
    """
    seconds, failed = {}, []

    def record(number: int, notebook: Path, outcome: tuple[float, str, bool]) -> None:
        seconds[notebook.stem], status, ok = outcome
        if not ok:
            failed.append(notebook.stem)
        print(f"[{number}/{len(notebooks)}] {notebook.stem:26} "
              f"{seconds[notebook.stem]:6.1f} s  {status}", flush=True)

    def parameters_of(notebook: Path) -> dict:
        return ((QUICK_PARAMETERS.get(notebook.stem, {}) if quick else {})
                | (parameters or {}).get(notebook.stem, {}))

    if jobs <= 1:
        for number, notebook in enumerate(notebooks, start=1):
            record(number, notebook, timed_lab(notebook, runs_dir, parameters_of(notebook),
                                                None, tolerate))
        return seconds, failed
    print(f"{len(notebooks)} labs, {jobs} at a time, {threads_per_job(jobs)} thread(s) each",
          flush=True)
    work = [(notebook, runs_dir, parameters_of(notebook))
            for notebook in longest_first(notebooks, runs_dir)]
    for number, ((notebook, _, _), outcome) in enumerate(run_pool(work, jobs, tolerate), 1):
        record(number, notebook, outcome)
    return {lab: seconds[lab] for lab in sorted(seconds)}, sorted(failed)


def check_jobs(parser: argparse.ArgumentParser, jobs: int) -> None:
    """One line, not a pool error, for a `--jobs` below 1 (`make course`, `make variance`)."""
    if jobs < 1:
        parser.error(f"--jobs must be at least 1, not {jobs}")


def threads_per_job(jobs: int) -> int:
    """Torch threads for each of `jobs` labs side by side: never more threads than cores."""
    return max(1, (os.cpu_count() or 1) // jobs)


def run_pool(work: list[tuple[Path, Path, dict]], jobs: int,
             tolerate: tuple[type[BaseException], ...]):
    """Run (notebook, runs folder, parameters) items `jobs` at a time, in the order given;
    yields (item, (seconds, status, ok)) as each one finishes (`make course`, `make
    variance`)."""
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        running = {pool.submit(timed_lab, *item, threads_per_job(jobs), tolerate): item
                   for item in work}
        for done in as_completed(running):
            yield running[done], done.result()


COURSE_JOBS = 2  # labs side by side in `make course` and `make bench` (see run_labs)


def run_course(labs_dir: Path = REPO_ROOT / "labs", runs_dir: Path = RUNS_DIR,
               quick: bool = False, jobs: int = COURSE_JOBS, changed_only: bool = False) -> Path:
    notebooks = sorted(labs_dir.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        sys.exit(f"no labs found in {labs_dir}")
    if changed_only:  # `make progress RUN=1`: only the labs edited since their last run
        from slmlab.progress import changed_labs  # here: it imports the exercise checks

        notebooks = changed_labs(labs_dir, runs_dir)
        print(f"{len(notebooks)} labs edited since their last run")
    _, failed = run_labs(notebooks, runs_dir, quick, jobs=jobs) if notebooks else (0.0, [])
    report = write_report(runs_dir, failed)
    print(f"report: {report}")
    if failed:
        sys.exit(f"labs that failed: {', '.join(failed)} (executed copies are in {runs_dir})")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run every lab with papermill; write the report")
    parser.add_argument("--quick", action="store_true", help="QUICK_PARAMETERS: a few steps each")
    parser.add_argument("--jobs", type=int, default=COURSE_JOBS, help="labs run side by side")
    parser.add_argument("--changed", action="store_true",
                        help="only the labs edited since their last run")
    args = parser.parse_args(argv)
    check_jobs(parser, args.jobs)
    run_course(runs_dir=RUNS_DIR / "quick" if args.quick else RUNS_DIR, quick=args.quick,
               jobs=args.jobs, changed_only=args.changed)


if __name__ == "__main__":
    main()
