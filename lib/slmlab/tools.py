"""Running a command-line tool (the ONNX model builder, Olive) with its output in a log.

Both tools print thousands of lines; the labs show the command, keep the log in a file,
and on failure raise one line naming the tool, its exit code and the log's last line.
Both are Python modules: `run_python` runs one in a fork of a server that imported it
once (`tool_server`), or as a plain `python -m` process when there is no server.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

from slmlab import tool_server


class ToolError(RuntimeError):
    """A tool that failed: one line with its exit code, last log line and log path."""


def last_line(path: str | Path) -> str:
    """The last non-blank line of a text file (cut to 300 characters), or ""."""
    lines = [line.strip() for line in Path(path).read_text(errors="replace").splitlines()]
    return next((line[:300] for line in reversed(lines) if line), "")


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


def raise_on_failure(exit_code: int, log_path: Path, name: str) -> None:
    """ToolError for a non-zero exit code: the tool, its code, its log's last line."""
    if exit_code != 0:
        raise ToolError(f"{name} failed (exit {exit_code}): {last_line(log_path)} "
                        f"(log {log_path})")


def run_python(command: list[str], log_path: str | Path, name: str, env: dict | None = None,
               cwd: str | Path | None = None, preload: tuple[str, ...] = (),
               seed: int | None = None) -> float:
    """`run_tool` for a `[sys.executable, "-m", MODULE, *ARGS]` command: run in a fork of
    the module's server (`preload`: libraries it imports up front; `seed`: the fork's random
    seed), or as a plain process when there is no server (seeded the same way) or the command
    is not one of those; its seconds, or ToolError."""
    if command[:2] != [sys.executable, "-m"] or len(command) < 3:
        return run_tool(command, log_path, name, env=env, cwd=cwd)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ) if env is None else env
    start = time.perf_counter()
    code = tool_server.run(command[2], command[3:], log_path, Path(cwd) if cwd else None, env,
                           preload, seed)
    if code is None:  # no server: a process of its own
        if seed is not None:
            command = [sys.executable, "-m", "slmlab.tool_server", "--seed", str(seed),
                       *command[2:]]
        return run_tool(command, log_path, name, env=env, cwd=cwd)
    raise_on_failure(code, log_path, name)
    return time.perf_counter() - start
