"""The tool server: a process that imported a Python command-line tool's libraries once
(Olive, the onnxruntime-genai builder) and runs each command in a fork of itself.

Started as a new process, `olive` or `python -m onnxruntime_genai.models.builder` spends
seconds importing torch, transformers and onnx before it does anything (Olive's imports:
~14 s of one core, the builder's ~10 s), and labs 05 and 06 run several. A server
(`python -m slmlab.tool_server --listen SOCKET MODULE...`, started by `tools.ask_server`
in the tool's environment) listens, imports the modules, then forks a child per command that
runs the tool's module as `python -m` would: each command still runs alone in a process of
its own, in its working directory, with its output in its log and its caller's environment,
and a crash ends that child only. A child can start from a given random seed: torch 2.13
seeds its generator from the OS in every process, so a tool that draws before it seeds
itself (Olive's LoRA pass builds the adapter, then its trainer seeds) otherwise gives
another result on every run. A server holds its libraries in memory (Olive's: ~0.5 GB
resident), so it exits once no command runs and either `IDLE_SECONDS` passed without one or
every process it serves for (its owners, see `tools`) has ended. A caller that stops waiting
(an interrupted cell) ends its command.
"""

import contextlib
import importlib
import importlib.util
import json
import os
import runpy
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import NoReturn

REPLY = "slmlab-tool-exit "  # marks the server's answer
IDLE_VARIABLE = "SLMLAB_TOOL_SERVER_IDLE"
IDLE_SECONDS = float(os.environ.get(IDLE_VARIABLE, 120))


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
    """One request line; None for a caller that only looked (`tools.server_pid`) or sent
    nonsense."""
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
