"""Python command-line tools (Olive, the onnxruntime-genai builder), each run in a fork of a
process that has imported the tool's libraries once.

Started as a new process, `olive` or `python -m onnxruntime_genai.models.builder` spends
seconds importing torch, transformers and onnx before it does anything (the builder: ~7 s
of CPU on 2 cores), and labs 05 and 06 run several. The first call for a tool starts a
server (`python -m slmlab.tool_server MODULE...`, in the tool's environment) that imports
the modules once, then forks a child per command that runs the tool's module as
`python -m` would: each command still runs alone in a process of its own, in its working
directory, with its output in its log, and a crash ends that child only. One server per
(environment, modules): Olive's environment carries another builder version than the
course's. If a server cannot start, `run` says so and the caller runs a plain process.
A child can start from a given random seed (`seed`): torch 2.13 seeds its generator from
the OS in every process, so a tool that draws before it seeds itself (Olive's LoRA pass
builds the adapter, then its trainer seeds) otherwise gives another result on every run.
A server holds its libraries in memory (the builder's: ~0.4 GB resident), so it exits
after `IDLE_SECONDS` without a command; the next command starts a new one.
"""

import importlib
import importlib.util
import json
import os
import runpy
import select
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

REPLY = "slmlab-tool-exit "  # marks the server's answers among anything a library prints
IDLE_SECONDS = float(os.environ.get("SLMLAB_TOOL_SERVER_IDLE", 120))

_servers: dict[str, subprocess.Popen] = {}
_lock = threading.Lock()
# Set per command, read by no library on import: pytest names the running test here, so in a
# test process every test had a server of its own (and imported the tool again)
PER_COMMAND_VARIABLES = ("PYTEST_CURRENT_TEST",)


def _key(preload: tuple[str, ...], env: dict) -> str:
    imported = {k: v for k, v in env.items() if k not in PER_COMMAND_VARIABLES}
    return json.dumps([preload, sorted(imported.items())])


def run(module: str, args: list[str], log_path: Path, cwd: Path | None, env: dict,
        preload: tuple[str, ...] = (), seed: int | None = None) -> int | None:
    """Run `python -m MODULE ARGS` in a fork of the server that imported `preload` (and
    `module`) under `env`, its random generators seeded with `seed` if given; its exit code,
    or None when there is no server."""
    preload = (*preload, module)
    key = _key(preload, env)
    with _lock:
        process = _servers.get(key)
        if process is None or process.poll() is not None:
            try:
                process = subprocess.Popen([sys.executable, "-m", "slmlab.tool_server", *preload],
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           stderr=subprocess.DEVNULL, env=env, text=True)
            except OSError:
                return None
            _servers[key] = process
        try:
            process.stdin.write(json.dumps({"module": module, "args": args,
                                            "log": str(Path(log_path).resolve()),
                                            "cwd": str(cwd or os.getcwd()), "seed": seed,
                                            "env": {k: env[k] for k in PER_COMMAND_VARIABLES
                                                    if k in env}}) + "\n")
            process.stdin.flush()
            for line in process.stdout:
                if line.startswith(REPLY):
                    return int(line[len(REPLY):])
        except (BrokenPipeError, ValueError):
            pass
        _servers.pop(key, None)  # it died (or could not import the tool): plain processes
        return None


def server(module: str, env: dict, preload: tuple[str, ...] = ()) -> subprocess.Popen | None:
    """The live server `run` would use for these arguments, if any (for tests)."""
    return _servers.get(_key((*preload, module), env))


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
        for name in PER_COMMAND_VARIABLES:  # this command's, not the first one's
            os.environ.pop(name, None)
        os.environ.update(request.get("env", {}))
        if request.get("seed") is not None:
            seed_imported_generators(request["seed"])
        _run_as_main(request["module"], request["args"])

    exit_with_outcome(work)


def serve(preload: list[str]) -> None:
    for name in preload:
        importlib.import_module(name)
    while select.select([sys.stdin], [], [], IDLE_SECONDS)[0]:  # nothing for a while: exit
        line = sys.stdin.readline()
        if not line:  # the caller is gone
            return
        request = json.loads(line)
        child = os.fork()
        if child == 0:
            _run_child(request)
        _, status = os.waitpid(child, 0)
        print(REPLY + str(os.waitstatus_to_exitcode(status)), flush=True)


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
    else:
        serve(sys.argv[1:])
