"""Tools run as `python -m` would, in children of this process's forkserver: the same exit
codes, logs and working directory as a plain process, a seed you can read, and nothing that
outlives the process that ran them."""

import os
import subprocess
import sys
import time

import psutil
import pytest

from slmlab import tools

DRAW = "import torch\nprint('drawn', torch.rand(3).tolist())\n"


def drawn(log) -> str:
    return next(line for line in log.read_text().splitlines() if line.startswith("drawn"))


def test_a_command_runs_in_its_folder_with_its_output_in_its_log(tmp_path):
    (tmp_path / "in.json").write_text('{"a": [1, 2]}')
    seconds = tools.run_python([sys.executable, "-m", "json.tool", "in.json"],
                               tmp_path / "a.log", "json.tool", cwd=tmp_path)
    assert '"a": [' in (tmp_path / "a.log").read_text() and seconds > 0
    with pytest.raises(tools.ToolError) as failed:
        tools.run_python([sys.executable, "-m", "json.tool", "missing.json"],
                         tmp_path / "b.log", "json.tool", cwd=tmp_path)
    message = str(failed.value)
    assert message.startswith("json.tool failed (exit 2): ") and "\n" not in message
    assert "missing.json" in message and message.endswith(f"(log {tmp_path / 'b.log'})")
    tools.run_python(["ls"], tmp_path / "c.log", "ls", cwd=tmp_path)  # a plain subprocess
    assert "a.log" in (tmp_path / "c.log").read_text()
    with pytest.raises(ValueError, match="needs a `python -m MODULE` command"):
        tools.run_python(["ls"], tmp_path / "d.log", "ls", seed=0)


def test_a_seed_is_an_argument_and_draws_the_same_numbers(tmp_path):
    """torch seeds itself from the OS in every process, so two runs draw different numbers
    unless the command is seeded (Olive's LoRA pass draws its adapter's weights so)."""
    (tmp_path / "draw.py").write_text(DRAW)

    def draw(name: str, seed: int | None) -> str:
        tools.run_python([sys.executable, "-m", "draw"], tmp_path / f"{name}.log", "draw",
                         cwd=tmp_path, seed=seed, python_path=(str(tmp_path),))
        return drawn(tmp_path / f"{name}.log")

    assert draw("a", 3) == draw("b", 3), "the same seed: the same numbers"
    assert draw("c", 3) != draw("d", 4)
    assert draw("e", None) != draw("f", None), "unseeded, each draws its own"
    plain = subprocess.run([sys.executable, "-c", "import torch; torch.manual_seed(3); "
                            "print('drawn', torch.rand(3).tolist())"],
                           capture_output=True, text=True, check=True)
    assert plain.stdout.strip() == draw("g", 3), "as a new process seeded the same way draws"


def test_a_command_sees_the_variables_it_is_given_and_not_the_callers_later_ones(tmp_path,
                                                                               monkeypatch):
    (tmp_path / "show.py").write_text(
        "import os\nprint(os.environ.get('TOOL_SETTING'), os.environ.get('CALLER_SECRET'))\n")
    tools.run_python([sys.executable, "-m", "json.tool", "--help"], tmp_path / "start.log",
                     "json.tool")  # the forkserver runs from here on
    monkeypatch.setenv("CALLER_SECRET", "token")
    tools.run_python([sys.executable, "-m", "show"], tmp_path / "show.log", "show",
                     variables={"TOOL_SETTING": "1"}, python_path=(str(tmp_path),))
    assert (tmp_path / "show.log").read_text().split() == ["1", "None"]


# a process that runs a long tool command, as a kernel running lab 06 does; an interrupt
# raises KeyboardInterrupt there, as in a kernel, whatever the test process passes on (a
# pytest-xdist worker ignores SIGINT, and a child inherits an ignored signal)
CALLER = """
import signal, sys
from slmlab import tools
signal.signal(signal.SIGINT, signal.default_int_handler)
tools.run_python([sys.executable, "-m", "sleepy"], sys.argv[1], "sleepy",
                 python_path=(sys.argv[2],))
"""


def _wait_for_pid(log, seconds: float = 60) -> psutil.Process:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = log.read_text().strip() if log.exists() else ""
        if text:
            return psutil.Process(int(text.split()[0]))
        time.sleep(0.1)
    raise AssertionError("the command never started")


@pytest.mark.parametrize("ending", ["killed", "interrupted"])
def test_nothing_a_caller_started_outlives_it(tmp_path, ending):
    (tmp_path / "sleepy.py").write_text(
        "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(120)\n")
    caller = subprocess.Popen([sys.executable, "-c", CALLER, str(tmp_path / "sleepy.log"),
                               str(tmp_path)])
    try:
        command = _wait_for_pid(tmp_path / "sleepy.log")
        started = psutil.Process(caller.pid).children(recursive=True)
        assert command.pid in {p.pid for p in started}
        if ending == "killed":
            caller.kill()  # a kernel that dies: no clean-up of its own runs
        else:
            caller.send_signal(2)  # SIGINT: a stopped cell
        caller.wait(timeout=30)
        gone, alive = psutil.wait_procs(started, timeout=30)
        assert not alive, f"still running after the caller ended: {alive}"
    finally:
        caller.kill()


def test_a_script_without_a_main_guard_gets_one_line_that_says_what_to_do(tmp_path):
    """A command's process imports the calling script first (multiprocessing's rule for
    every start method but fork): unguarded top-level code fails before the command runs."""
    (tmp_path / "script.py").write_text(
        "import sys\nfrom slmlab import tools\n"
        "try:\n    tools.run_python([sys.executable, '-m', 'json.tool', '--help'], "
        "sys.argv[1], 'json.tool')\n"
        "except tools.ToolError as error:\n    print(error)\n")
    done = subprocess.run([sys.executable, str(tmp_path / "script.py"), str(tmp_path / "a.log")],
                          capture_output=True, text=True, timeout=120)
    assert "json.tool failed (exit 1) before it started" in done.stdout, done.stdout + done.stderr
    assert 'if __name__ == "__main__":' in done.stdout


def test_where_there_is_no_pidfd_a_command_asks_whether_its_caller_lives():
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    assert tools._alive(os.getpid())
    assert not tools._alive(int(ended.stdout))  # reaped: no such process any more
