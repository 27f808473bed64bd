"""Running a command-line tool (the ONNX model builder, Olive) with its output in a log.

Both tools print thousands of lines; the labs show the command, keep the log in a file,
and on failure raise one line naming the tool, its exit code and the log's last line.
"""

import subprocess
import time
from pathlib import Path


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
