"""The course runner: labs side by side, one thread each, a failing lab reported, not fatal."""

import json
import os
import subprocess
import sys
import time

import nbformat
import papermill
import pytest

from slmlab import REPO_ROOT, results
from slmlab.course.runner import (
    CELL_TIMEOUT_VARIABLE,
    FIRST_RUN_ORDER,
    STARTS_FIRST,
    longest_first,
    run_labs,
    stderr_log,
    stderr_to,
)
from slmlab.course.tree_memory import TreeMemory

# a process that holds 300 MB resident for 1.5 s
HOLD_300_MB = ("import time\nblock = bytearray(300_000_000)\n"
               "block[::4096] = b'x' * len(block[::4096])\ntime.sleep(1.5)\n")


def tiny_lab(path, body: str):
    """A notebook with a parameters cell and `body`, which writes metrics.json."""
    notebook = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell('output_dir = "."')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell(body)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(notebook, path)
    return path


@pytest.mark.slow
def test_labs_run_side_by_side_with_one_thread_each_and_a_failure_is_reported(tmp_path, capsys):
    labs_dir, runs_dir = tmp_path / "labs", tmp_path / "runs"
    labs_dir.mkdir()
    writes_threads = ("import json, os, pathlib\n"
                      "pathlib.Path(output_dir, 'metrics.json').write_text(json.dumps("
                      "{'threads': os.environ.get('OMP_NUM_THREADS'), 'pid': os.getpid()}))")
    good = [tiny_lab(labs_dir / f"0{n}_good.ipynb", writes_threads) for n in (1, 2)]
    bad = tiny_lab(labs_dir / "03_bad.ipynb", "raise ValueError('broken on purpose')")
    seconds, failed = run_labs([*good, bad], runs_dir, jobs=2)
    assert sorted(seconds) == ["01_good", "02_good", "03_bad"]
    assert failed == ["03_bad"]
    printed = capsys.readouterr().out
    assert "2 at a time" in printed and "FAILED: ValueError: broken on purpose" in printed
    expected_threads = str(max(1, (os.cpu_count() or 1) // 2))
    for lab in good:
        metrics = json.loads((runs_dir / lab.stem / "metrics.json").read_text())
        assert metrics["threads"] == expected_threads


def test_what_a_kernel_writes_to_stderr_goes_to_a_log_file_not_the_terminal(tmp_path, capfd):
    labs_dir, runs_dir = tmp_path / "labs", tmp_path / "runs"
    labs_dir.mkdir()
    # the kernel's own log (as when jupyter_client interrupts it at shutdown) and a raw fd-2
    # write (as from a child process's progress bar)
    noisy = tiny_lab(labs_dir / "01_noisy.ipynb",
                     "import os\nget_ipython().kernel.log.error('kernel log line')\n"
                     "os.write(2, b'fd 2 line\\n')\n"
                     "open(output_dir + '/metrics.json', 'w').write('{}')")
    failing = tiny_lab(labs_dir / "02_failing.ipynb", "import os\nos.write(2, b'last words\\n')\n"
                       "raise ValueError('broken on purpose')")
    _, failed = run_labs([noisy, failing], runs_dir)
    out, err = capfd.readouterr()
    assert failed == ["02_failing"] and "[1/2] 01_noisy" in out
    assert not any(line in out + err for line in ("kernel log line", "fd 2 line", "last words"))
    noisy_log = err_file(runs_dir, "01_noisy")
    assert "kernel log line" in noisy_log and "fd 2 line" in noisy_log
    assert "last words" in err_file(runs_dir, "02_failing")
    assert f"(its stderr: {stderr_log(runs_dir, '02_failing')})" in out
    assert (runs_dir / "01_noisy" / "metrics.json").exists(), "the lab's folder is its own"


def test_a_cell_past_the_timeout_fails_its_lab_instead_of_hanging(tmp_path, monkeypatch):
    labs_dir, runs_dir = tmp_path / "labs", tmp_path / "runs"
    labs_dir.mkdir()
    monkeypatch.setenv(CELL_TIMEOUT_VARIABLE, "2")
    stuck = tiny_lab(labs_dir / "01_stuck.ipynb", "import time\ntime.sleep(60)")
    start = time.perf_counter()
    _, failed = run_labs([stuck], runs_dir, tolerate=(Exception,))
    assert failed == ["01_stuck"] and time.perf_counter() - start < 30


def test_stderr_to_keeps_a_log_only_if_something_was_written(tmp_path, capfd):
    with stderr_to(tmp_path / "quiet.log"):
        pass
    assert not (tmp_path / "quiet.log").exists()
    with stderr_to(tmp_path / "noisy.log"):
        os.write(2, b"to the file\n")
    os.write(2, b"to the terminal again\n")
    assert (tmp_path / "noisy.log").read_text() == "to the file\n"
    assert capfd.readouterr().err == "to the terminal again\n"


def err_file(runs_dir, lab: str) -> str:
    return stderr_log(runs_dir, lab).read_text()


def test_each_labs_peak_memory_is_measured_and_reported(tmp_path):
    from slmlab.course.report import peak_memory_mb, write_report

    labs_dir, runs_dir = tmp_path / "labs", tmp_path / "runs"
    labs_dir.mkdir()
    holds_300_mb = HOLD_300_MB + "open(output_dir + '/metrics.json', 'w').write('{}')"
    small, large = (tiny_lab(labs_dir / name, code) for name, code in (
        ("01_small.ipynb", "open(output_dir + '/metrics.json', 'w').write('{}')"),
        ("02_large.ipynb", holds_300_mb)))
    run_labs([small, large], runs_dir)
    assert peak_memory_mb(runs_dir, "02_large") >= peak_memory_mb(runs_dir, "01_small") + 280
    page = write_report(runs_dir, labs_dir=labs_dir).read_text()
    assert f"peak memory: {peak_memory_mb(runs_dir, '02_large'):.0f} MB" in page


def test_tree_memory_counts_what_starts_while_measuring_not_what_older_processes_fork():
    # a child that was already running forks a 300-MB process meanwhile: not the work's
    forks = (f"import os, sys\nsys.stdin.readline()\nif os.fork() == 0:\n"
             f"    exec({HOLD_300_MB!r})\n    os._exit(0)\nos.wait()\n")
    older = subprocess.Popen([sys.executable, "-c", forks], stdin=subprocess.PIPE)
    try:
        with TreeMemory(include_self=False, every_s=0.05) as memory:
            older.communicate(b"go\n", timeout=60)
    finally:
        older.kill()
    assert memory.peak_mb < 100, memory.peak_mb
    # the same process started while measuring is counted
    with TreeMemory(include_self=False, every_s=0.05) as memory:
        subprocess.run([sys.executable, "-c", HOLD_300_MB], check=True, timeout=60)
    assert memory.peak_mb >= 280, memory.peak_mb


def test_one_at_a_time_stops_on_errors_it_does_not_tolerate(tmp_path):
    bad = tiny_lab(tmp_path / "01_bad.ipynb", "raise ValueError('broken on purpose')")
    try:
        run_labs([bad], tmp_path / "runs", tolerate=())
    except papermill.PapermillExecutionError as error:
        assert error.ename == "ValueError"
    else:
        raise AssertionError("an error outside `tolerate` must propagate")


def test_longest_labs_start_first(tmp_path):
    labs = [tmp_path / f"0{n}_lab.ipynb" for n in range(4)]
    for lab, seconds in zip(labs[:3], (30.0, 300.0, 5.0), strict=True):
        (tmp_path / lab.stem).mkdir()
        (tmp_path / lab.stem / lab.name).write_text(
            json.dumps({"metadata": {"papermill": {"duration": seconds}}}))
    # never run (03) first: its length is unknown; then by the last run's duration
    assert [lab.stem[:2] for lab in longest_first(labs, tmp_path)] == ["03", "01", "00", "02"]


def test_a_fresh_clone_starts_labs_03_and_06_then_the_labs_recorded_longest_first(
        tmp_path):
    labs = sorted((REPO_ROOT / "labs").glob("[0-9][0-9]_*.ipynb"))
    ordered = [lab.stem[:2] for lab in longest_first(labs, tmp_path)]  # no runs in tmp_path
    assert ordered == list(FIRST_RUN_ORDER) and ordered[:2] == list(STARTS_FIRST) == ["03", "06"]
    # the newest recorded run with labs side by side, as `make course` runs them
    timings = [t for t in results.load()["timings"]
               if t["conditions"].get("labs_side_by_side", 1) > 1 and "lab_seconds" in t]
    recorded = {lab[:2]: seconds for lab, seconds in timings[-1]["lab_seconds"].items()}
    rest = [n for n in sorted(recorded, key=recorded.get, reverse=True)
            if n not in STARTS_FIRST]
    assert [*STARTS_FIRST, *rest] == ordered


def test_a_failed_rerun_leaves_no_stale_figures_and_the_report_marks_it(tmp_path):
    from slmlab.course.report import collect
    from slmlab.course.runner import run_course

    labs_dir, runs_dir = tmp_path / "labs", tmp_path / "runs"
    labs_dir.mkdir()
    tiny_lab(labs_dir / "01_good.ipynb", "import json, pathlib\npathlib.Path(output_dir, "
             "'metrics.json').write_text(json.dumps({'accuracy': 0.5}))")
    tiny_lab(labs_dir / "02_bad.ipynb", "raise ValueError('broken on purpose')")
    (runs_dir / "02_bad").mkdir(parents=True)
    (runs_dir / "02_bad" / "metrics.json").write_text('{"accuracy": 0.99}')  # an older run
    try:
        run_course(labs_dir, runs_dir, jobs=1)
    except SystemExit as stop:
        assert "02_bad" in str(stop.code)  # a message, so the exit status is non-zero
    else:
        raise AssertionError("a failed lab must make the course exit non-zero")
    assert not (runs_dir / "02_bad" / "metrics.json").exists()
    # the report's figures: the good lab's only (its page is for a browser test, issue 15)
    assert collect(runs_dir) == {"01_good": {"accuracy": 0.5}}
    assert (runs_dir / "report.html").exists()


def test_only_the_labs_edited_since_their_run_run_again(tmp_path, capsys):
    from slmlab.course.runner import run_course

    labs_dir, runs_dir = tmp_path / "labs", tmp_path / "runs"
    labs_dir.mkdir()
    labs = [tiny_lab(labs_dir / f"0{n}_good.ipynb", "x = 1") for n in (1, 2)]
    run_course(labs_dir, runs_dir, jobs=1)
    ran = {lab.stem: (runs_dir / lab.stem / lab.name).stat().st_mtime for lab in labs}
    os.utime(labs[1], (ran["02_good"] + 60, ran["02_good"] + 60))  # edited after its run
    capsys.readouterr()
    run_course(labs_dir, runs_dir, jobs=1, changed_only=True)
    assert "1 labs edited since their last run" in capsys.readouterr().out
    assert (runs_dir / "01_good" / "01_good.ipynb").stat().st_mtime == ran["01_good"]
    assert (runs_dir / "02_good" / "02_good.ipynb").stat().st_mtime > ran["02_good"]


def test_the_report_leads_with_the_targets_and_embeds_the_plots(tmp_path):
    from slmlab.course.report import write_report
    from slmlab.targets import goal

    lab = tmp_path / "03_peft_lora_sft"
    lab.mkdir()
    metrics = {"accuracy_after": 0.93, "targets": [goal("held-out accuracy", 0.93, ">=", 0.8),
                                                   goal("trainable %", 2.5, "<=", 2.0)]}
    (lab / "metrics.json").write_text(json.dumps(metrics))
    (lab / "loss_curves.png").write_bytes(b"\x89PNG not really")
    page = write_report(tmp_path).read_text()
    assert page.index("Headline targets") < page.index("03_peft_lora_sft</h3>")
    assert "data:image/png;base64," in page and "Machine and libraries" in page
    markdown = (tmp_path / "report.md").read_text()
    assert "| 03_peft_lora_sft | held-out accuracy | >= 0.8 | 0.93 | met |" in markdown
    assert "| 03_peft_lora_sft | trainable % | <= 2 | 2.5 | MISSED |" in markdown
