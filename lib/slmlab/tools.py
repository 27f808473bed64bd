"""Running a command-line tool (the ONNX model builder, Olive, one PEFT method's run) with
its output in a log.

These tools print thousands of lines; the labs show the command, keep the log in a file,
and on failure raise one line naming the tool, its exit code and the log's last line.

`run_tool` runs any command as a plain subprocess. `run_python` runs a
`[sys.executable, "-m", MODULE, *ARGS]` command as `python -m` would, in a child of this
process's `multiprocessing` forkserver, which imports the libraries every such tool needs
(`SHARED_IMPORTS`: torch, transformers, PEFT, ONNX, onnxruntime) once: a kernel that runs
six Olive commands pays those imports (~8-10 s of one core) once, not six times. Each
command still runs alone in a process of its own, in its working directory, with its
output in its log. Its random generators start from `seed` when one is given, and the
variables the tool needs are passed by name (`variables`); a library that reads a
variable when it is imported (huggingface_hub, for one) sees the kernel's value from when
the forkserver started. A command's process, and whatever it starts, ends when its caller
does; the forkserver ends once its caller and the commands it forked have: nothing
outlives the kernel. As with every `multiprocessing` start method except fork, a script
(not a notebook) that calls `run_python` keeps its top-level code under
`if __name__ == "__main__":`, because each command's process imports the script first.
"""

import contextlib
import importlib.util
import multiprocessing
import os
import runpy
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

# what the builder, Olive and the PEFT methods import before they do anything; never
# onnxruntime_genai, whose builder Olive takes from another version (`olive_pipeline`)
SHARED_IMPORTS = ("torch", "transformers", "peft", "onnx", "onnxruntime", "onnx_ir")


class ToolError(RuntimeError):
    """A tool that failed: one line with its exit code, last log line and log path."""


def last_line(path: str | Path) -> str:
    """The last non-blank line of a text file (cut to 300 characters), or ""."""
    lines = [line.strip() for line in Path(path).read_text(errors="replace").splitlines()]
    return next((line[:300] for line in reversed(lines) if line), "")


def raise_on_failure(exit_code: int, log_path: Path, name: str) -> None:
    """ToolError for a non-zero exit code: the tool, its code, its log's last line."""
    if exit_code != 0:
        raise ToolError(f"{name} failed (exit {exit_code}): {last_line(log_path)} "
                        f"(log {log_path})")


def run_tool(command: list[str], log_path: str | Path, name: str, env: dict | None = None,
             cwd: str | Path | None = None) -> float:
    """Run `command` with stdout and stderr in `log_path`; return its seconds, or raise
    ToolError."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log_path, "w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    raise_on_failure(done.returncode, log_path, name)
    return time.perf_counter() - start


def run_python(command: list[str], log_path: str | Path, name: str,
               cwd: str | Path | None = None, seed: int | None = None,
               variables: dict[str, str] | None = None,
               python_path: tuple[str, ...] = ()) -> float:
    """Run `[sys.executable, "-m", MODULE, *ARGS]` in a child of the forkserver: its random
    generators seeded with `seed` (None: from the OS, as a new process's are), `variables`
    set in its environment and `python_path` put first on its `sys.path`. Return its
    seconds, or raise ToolError. An interrupted caller (a stopped cell) ends the command.
    Any other command runs as a plain subprocess (`run_tool`) with `variables` set."""
    if command[:2] != [sys.executable, "-m"] or len(command) < 3:  # any other command
        if seed is not None or python_path:
            raise ValueError(f"a seed or python_path needs a `python -m MODULE` command: "
                             f"{command}")
        return run_tool(command, log_path, name, env=dict(os.environ, **(variables or {})),
                        cwd=cwd)
    log_path = Path(log_path).resolve()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    child = forkserver().Process(
        target=run_module, args=(command[2], command[3:], str(log_path),
                                 str(Path(cwd or os.getcwd()).resolve()), seed,
                                 dict(variables or {}), tuple(python_path), os.getpid()))
    try:
        child.start()
        child.join()
    finally:
        if child.pid is not None and child.exitcode is None:  # interrupted: end it and
            with contextlib.suppress(ProcessLookupError):     # what it started
                os.killpg(child.pid, signal.SIGTERM)
            child.join()
    if child.exitcode != 0 and not log_path.exists():  # it failed before the command ran
        raise ToolError(f"{name} failed (exit {child.exitcode}) before it started; a script "
                        "that calls run_python keeps its top-level code under "
                        "`if __name__ == \"__main__\":`")
    raise_on_failure(child.exitcode, log_path, name)
    return time.perf_counter() - start


def forkserver() -> multiprocessing.context.BaseContext:
    """This process's forkserver context, asked to import SHARED_IMPORTS when it starts
    (the first `run_python` starts it)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([name for name in SHARED_IMPORTS
                                    if importlib.util.find_spec(name) is not None])
    return context


def seed_generators(seed: int | None) -> None:
    """Seed Python's, NumPy's and torch's generators, where imported; None: from the OS, as
    a new process seeds them (a fork starts with its parent's state)."""
    import random

    random.seed(seed)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(seed)
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.manual_seed(seed) if seed is not None else torch.seed()


def run_module(module: str, args: list[str], log_path: str, cwd: str, seed: int | None,
               variables: dict[str, str], python_path: tuple[str, ...], caller: int) -> None:
    """In the command's own process: `python -m MODULE ARGS`, output to `log_path`; it and
    whatever it starts end when `caller` does."""
    os.setpgrp()  # a group of its own, so that ending it ends what it started
    _end_with(caller)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.chdir(cwd)
    os.environ.update(variables)
    sys.path[:0] = python_path
    seed_generators(seed)
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a tool may have closed it
                stream.flush()


def _end_with(caller: int) -> None:
    """Kill this process's group once `caller` has ended (a kernel that died or was
    restarted): the forkserver stays while any of its children runs, so it would not."""
    try:
        ended = os.pidfd_open(caller)  # Linux: readable once the caller has ended
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # no pidfd (macOS): ask every second
        ended = None

    def watch() -> None:
        if ended is not None:
            select.select([ended], [], [])
        else:
            while _alive(caller):
                time.sleep(1)
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or the pid is someone else's now
        return False
    return True
