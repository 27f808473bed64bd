"""Python command-line tools (Olive, the onnxruntime-genai builder), each run in a fork of a
process that has imported the tool's libraries once.

Started as a new process, `olive` or `python -m onnxruntime_genai.models.builder` spends
seconds importing torch, transformers and onnx before it does anything (Olive's imports:
~14 s of one core, the builder's ~10 s), and labs 05 and 06 run several. The first call for
a tool starts a server (`python -m slmlab.tool_server --listen SOCKET MODULE...`, in the
tool's environment) that imports the modules once, then forks a child per command that runs
the tool's module as `python -m` would: each command still runs alone in a process of its
own, in its working directory, with its output in its log and its caller's environment,
and a crash ends that child only.

A server listens on a Unix socket named after its key (the Python, the modules and the
environment less what differs per caller: `CALLER_VARIABLES`), so every process that asks
for the same tool shares it: lab 05's and lab 06's kernels, the test processes, the
course's pool. Olive's environment carries another builder version than the course's: a
server of its own. If a server cannot start, `run` says so and the caller runs a plain
process. A child can start from a given random seed (`seed`): torch 2.13 seeds its generator
from the OS in every process, so a tool that draws before it seeds itself (Olive's LoRA
pass builds the adapter, then its trainer seeds) otherwise gives another result on every run.
A server holds its libraries in memory (Olive's: ~0.5 GB resident), so it exits once no
command runs and either `IDLE_SECONDS` passed without one or every process it serves for has
ended (`OWNER_VARIABLE`: the test suite and the course name themselves, so their servers
outlive the kernels that asked; otherwise the asking process is the owner). A caller that
stops waiting (an interrupted cell) ends its command.
"""

import contextlib
import fcntl
import hashlib
import importlib
import importlib.util
import json
import os
import runpy
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

REPLY = "slmlab-tool-exit "  # marks the server's answer
IDLE_VARIABLE = "SLMLAB_TOOL_SERVER_IDLE"
IDLE_SECONDS = float(os.environ.get(IDLE_VARIABLE, 120))
OWNER_VARIABLE = "SLMLAB_TOOL_OWNER"  # pid of the process whose life a server may share
START_SECONDS = 30.0  # a server binds its socket before it imports: it answers at once

_lock = threading.Lock()
# Set per caller and read by no tool's library on import: pytest names the running test and
# its worker; a Jupyter kernel sets its parent, terminal and pager variables and matplotlib's
# backend. Left out of the key (a kernel and a test process share a server); each command
# runs with its caller's own values.
CALLER_VARIABLES = frozenset({
    "PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT",
    "PYTEST_XDIST_TESTRUNUID", "JPY_PARENT_PID", "JPY_SESSION_NAME", "PYDEVD_USE_FRAME_EVAL",
    "PYDEVD_IPYTHON_COMPATIBLE_DEBUGGING", "TERM", "CLICOLOR", "CLICOLOR_FORCE", "FORCE_COLOR",
    "PAGER", "GIT_PAGER", "MPLBACKEND", "SLMLAB_NO_4BIT", "SLMLAB_CELL_TIMEOUT", OWNER_VARIABLE})


def _key(preload: tuple[str, ...], env: dict) -> str:
    imported = {k: v for k, v in env.items() if k not in CALLER_VARIABLES}
    return json.dumps([sys.executable, preload, sorted(imported.items())])


def socket_path(preload: tuple[str, ...], env: dict) -> Path:
    """Where the server for these modules and this environment listens."""
    folder = Path(tempfile.gettempdir()) / f"slmlab-tools-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"{hashlib.sha256(_key(preload, env).encode()).hexdigest()[:20]}.sock"


def run(module: str, args: list[str], log_path: Path, cwd: Path | None, env: dict,
        preload: tuple[str, ...] = (), seed: int | None = None) -> int | None:
    """Run `python -m MODULE ARGS` in a fork of the server that imported `preload` (and
    `module`) under `env`, its random generators seeded with `seed` if given; its exit code,
    or None when there is no server."""
    preload = (*preload, module)
    path = socket_path(preload, env)
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
        if answer.startswith(REPLY):
            return int(answer[len(REPLY):])
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


def server(module: str, env: dict, preload: tuple[str, ...] = ()) -> int | None:
    """The pid of the live server `run` would use for these arguments, if any (for tests)."""
    connection = _connect(socket_path((*preload, module), env))
    if connection is None:
        return None
    with connection:  # the peer's credentials: its pid
        credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    return int.from_bytes(credentials[:4], sys.byteorder)


def seed_imported_generators(seed: int | None) -> None:
    """Seed Python's, NumPy's and torch's generators, where imported (the server's modules);
    None: from the OS, as a new process seeds them (a fork starts with its parent's state)."""
    import random

    random.seed(seed)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(seed)
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.manual_seed(seed) if seed is not None else torch.seed()


def _run_as_main(module: str, args: list[str]) -> None:
    """Run `module` as `python -m MODULE ARGS` would, in this process."""
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def exit_with_outcome(work: Callable[[], None], run_atexit: bool = False) -> NoReturn:
    """End this fork as a process that ran `work` would: exit code 0, a SystemExit's code,
    or 1 with the traceback on stderr; streams flushed (and the atexit functions run, as an
    interpreter's exit does, if `run_atexit`). A fork must never return into its parent's
    loop."""
    code = 1
    try:
        work()
        code = 0
    except SystemExit as error:
        code = error.code if isinstance(error.code, int) else int(error.code is not None)
    except BaseException:  # noqa: BLE001 - whatever the work raises ends on its stderr
        traceback.print_exc()
    finally:
        if run_atexit:
            import atexit

            atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a tool may have closed it
                pass
        os._exit(code)


def _run_child(request: dict) -> NoReturn:
    def work() -> None:
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.chdir(request["cwd"])
        os.environ.clear()  # the caller's environment, its own per-caller variables included
        os.environ.update(request["env"])
        if request.get("seed") is not None:
            seed_imported_generators(request["seed"])
        _run_as_main(request["module"], request["args"])

    exit_with_outcome(work)


def _read_request(connection: socket.socket) -> dict | None:
    """One request line; None for a caller that only looked (`server`) or sent nonsense."""
    connection.settimeout(10)  # a caller writes its request as soon as it connects
    try:
        line = connection.makefile().readline()
        return json.loads(line) if line else None
    except (OSError, ValueError):
        return None
    finally:
        connection.settimeout(None)


def serve(path: str, preload: list[str]) -> None:
    """Listen at `path` (before importing: callers connect at once and wait there), import
    `preload`, then fork a child per request and answer each caller with its exit code. Ends
    once nothing runs and either IDLE_SECONDS passed or every owner has ended. No threads:
    fork copies only the calling one."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    ours = os.stat(path).st_ino  # a newer server may own the path by the time this one ends
    listener.listen(64)
    for name in preload:
        importlib.import_module(name)
    running: dict[int, tuple[int, socket.socket]] = {}  # child's pidfd -> (pid, its caller)
    owners: dict[int, int] = {}  # owner's pid -> pidfd
    abandoned: set[int] = set()  # children whose caller left
    last_request = time.monotonic()
    while True:
        for pid, pidfd in list(owners.items()):
            if select.select([pidfd], [], [], 0)[0]:  # that owner has ended
                os.close(owners.pop(pid))
        idle = time.monotonic() - last_request
        if not running and (idle >= IDLE_SECONDS or (not owners and idle > 1)):
            break
        # a caller's socket turns readable only when it hangs up (an interrupted cell)
        callers = {caller: pidfd for pidfd, (_, caller) in running.items()
                   if pidfd not in abandoned}
        ready = select.select([listener, *running, *callers], [], [], 1.0)[0]
        for item in ready:
            if item in running:  # a command ended: its exit code to its caller
                pid, caller = running.pop(item)
                abandoned.discard(item)
                _, status = os.waitpid(pid, 0)
                os.close(item)
                with caller, contextlib.suppress(OSError):
                    caller.sendall(f"{REPLY}{os.waitstatus_to_exitcode(status)}\n".encode())
            elif item in callers and callers[item] in running:  # its caller left: end it
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(callers[item], signal.SIGTERM)
                abandoned.add(callers[item])
        if listener in ready:
            caller, _ = listener.accept()
            request = _read_request(caller)
            if request is None:
                caller.close()
                continue
            last_request = time.monotonic()
            owner = request.get("owner")
            if owner and owner not in owners:
                with contextlib.suppress(OSError):
                    owners[owner] = os.pidfd_open(owner)
            pid = os.fork()
            if pid == 0:  # the child holds nothing of the server's
                for fd in [*running, *owners.values()]:
                    os.close(fd)
                for other in [listener, *callers]:
                    other.close()
                _run_child(request)
            running[os.pidfd_open(pid)] = (pid, caller)
    with contextlib.suppress(OSError):
        if os.stat(path).st_ino == ours:
            os.unlink(path)
    listener.close()


def run_seeded(seed: int, module: str, args: list[str]) -> None:
    """`python -m MODULE ARGS` in this process, its generators seeded first: the plain
    process `tools.run_python` falls back to without a server draws as a fork would."""
    for name in ("numpy", "torch"):  # imported here so that they can be seeded
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
    seed_imported_generators(seed)
    _run_as_main(module, args)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--seed"]:  # python -m slmlab.tool_server --seed N MODULE ARGS...
        run_seeded(int(sys.argv[2]), sys.argv[3], sys.argv[4:])
    else:  # python -m slmlab.tool_server --listen SOCKET MODULE...
        serve(sys.argv[2], sys.argv[3:])
