"""Running a command-line tool (the ONNX model builder, Olive) with its output in a log.

Both tools print thousands of lines; the labs show the command, keep the log in a file,
and on failure raise one line naming the tool, its exit code and the log's last line.
Both are Python modules: `run_python` runs one in a fork of a server that imported it
once (`tool_server`), or as a plain `python -m` process when there is no server.

A server listens on a Unix socket named after its key (the Python, the modules and the
environment less what differs per caller: `CALLER_VARIABLES`), so every process that asks
for the same tool shares it: lab 05's and lab 06's kernels, lab 08's methods, the test
processes. Olive's environment carries another builder version than the course's: a
server of its own. A server serves until idle, or until its owners have ended: the
processes named by `OWNER_VARIABLE` in its callers' environments (the test suite names
itself, so its servers outlive the kernels that asked), or else the callers themselves (the
course: a server ends with the kernel that started it, whose memory the course counts).
"""

import fcntl
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from slmlab import kernel_zygote, tool_server

OWNER_VARIABLE = "SLMLAB_TOOL_OWNER"  # pid of the process whose life a server may share
START_SECONDS = 30.0  # a server listens before it imports: it answers at once
MAX_SOCKET_PATH = 107  # bytes of a Unix socket's path on Linux (a deep TMPDIR: no server)


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
    code = ask_server(command[2], command[3:], log_path, Path(cwd) if cwd else None, env,
                      preload, seed)
    if code is None:  # no server: a process of its own
        if seed is not None:
            command = [sys.executable, "-m", "slmlab.tool_server", "--seed", str(seed),
                       *command[2:]]
        return run_tool(command, log_path, name, env=env, cwd=cwd)
    raise_on_failure(code, log_path, name)
    return time.perf_counter() - start


# --- asking a tool server ------------------------------------------------------------------

_lock = threading.Lock()
# Set per caller and read by no tool's library on import: those a kernel zygote leaves out
# of its key too (the running test's name, SLMLAB_NO_4BIT, what importing ORT-GenAI or
# PEFT sets in a test process, ...), pytest's worker names, and
# what a Jupyter kernel sets: its parent, terminal and pager variables and matplotlib's
# backend (which the zygote, importing ipykernel and matplotlib, must keep). Left out of the
# key (a kernel and a test process share a server); each command runs with its caller's own.
CALLER_VARIABLES = (kernel_zygote.PER_KERNEL_VARIABLES
                    | kernel_zygote.SET_ON_IMPORT_VARIABLES | {
    "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID",
    "JPY_PARENT_PID", "PYDEVD_USE_FRAME_EVAL", "PYDEVD_IPYTHON_COMPATIBLE_DEBUGGING", "TERM",
    "CLICOLOR", "CLICOLOR_FORCE", "FORCE_COLOR", "PAGER", "GIT_PAGER", "MPLBACKEND",
    OWNER_VARIABLE})


def _key(preload: tuple[str, ...], env: dict) -> str:
    imported = {k: v for k, v in env.items() if k not in CALLER_VARIABLES}
    return json.dumps([sys.executable, preload, sorted(imported.items())])


def socket_path(preload: tuple[str, ...], env: dict) -> Path | None:
    """Where the server for these modules and this environment listens; None if the folder
    is not this user's alone (a caller sends its environment, tokens included)."""
    folder = Path(tempfile.gettempdir()) / f"slmlab-tools-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        mine = folder.lstat()
    except OSError:
        return None
    if mine.st_uid != os.getuid() or mine.st_mode & 0o077 or folder.is_symlink():
        return None
    path = folder / f"{hashlib.sha256(_key(preload, env).encode()).hexdigest()[:20]}.sock"
    return path if len(os.fsencode(path)) <= MAX_SOCKET_PATH else None


def ask_server(module: str, args: list[str], log_path: Path, cwd: Path | None, env: dict,
               preload: tuple[str, ...] = (), seed: int | None = None) -> int | None:
    """Run `python -m MODULE ARGS` in a fork of the server that imported `preload` (and
    `module`) under `env`, its random generators seeded with `seed` if given; its exit code,
    or None when there is no server."""
    preload = (*preload, module)
    path = socket_path(preload, env)
    if path is None:
        return None
    request = json.dumps({"module": module, "args": args, "log": str(Path(log_path).resolve()),
                          "cwd": str(cwd or os.getcwd()), "seed": seed, "env": env,
                          "owner": int(env.get(OWNER_VARIABLE) or os.getpid())}) + "\n"
    for _ in range(2):  # a server that ended as we asked: start another, once
        connection = _connect(path) or _start(path, preload, env)
        if connection is None:
            return None
        with connection:
            try:
                connection.sendall(request.encode())
                answer = connection.makefile().readline()
            except OSError:
                answer = ""
        if answer.startswith(tool_server.REPLY):
            return int(answer[len(tool_server.REPLY):])
    return None


def _connect(path: Path) -> socket.socket | None:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(path))
    except OSError:  # none yet, or one that ended without removing its socket
        connection.close()
        return None
    return connection


def _start(path: Path, preload: tuple[str, ...], env: dict) -> socket.socket | None:
    """Start the server at `path` (one process does, under a lock) and connect to it."""
    # one lock for all starts (held until the new server listens: a fraction of a second)
    with _lock, open(path.with_name("starting.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be starting this one
        connection = _connect(path)
        if connection is not None:
            return connection
        path.unlink(missing_ok=True)  # a server that was killed leaves its socket behind
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "slmlab.tool_server", "--listen", str(path), *preload],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True)  # not in the caller's group
        except OSError:
            return None
        deadline = time.monotonic() + START_SECONDS
        while process.poll() is None and time.monotonic() < deadline:
            connection = _connect(path)
            if connection is not None:
                return connection
            time.sleep(0.02)
        return None


def server_pid(module: str, env: dict, preload: tuple[str, ...] = ()) -> int | None:
    """The pid of the live server `ask_server` would use for these arguments, if any."""
    path = socket_path((*preload, module), env)
    connection = _connect(path) if path else None
    if connection is None:
        return None
    with connection:  # the peer's credentials: its pid
        credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    return int.from_bytes(credentials[:4], sys.byteorder)
