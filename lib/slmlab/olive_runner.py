"""Olive commands, each in a fork of one process that has imported Olive's libraries once.

Started as a new process, `olive` spends seconds importing torch, transformers, onnx and
Olive before it does anything, and lab 06 runs six commands. The first command here starts
a server (`python -m slmlab.olive_runner`, with Olive's environment) that imports them once
and forks a child per command: each command still runs alone in a process of its own, in
its working directory, with its output in its log, and a crash ends that child only. If
the server cannot start, `run` says so and the caller runs `olive` as a plain process.
"""

import importlib
import json
import os
import subprocess
import sys
import threading
import traceback
from pathlib import Path

PRELOAD = ("torch", "transformers", "peft", "onnx", "onnxruntime", "olive.cli.launcher")
REPLY = "slmlab-olive-exit "  # marks the server's answers among anything a library prints

_server: dict = {"process": None, "env": None, "lock": threading.Lock()}


def run(args: list[str], log_path: Path, cwd: Path | None, env: dict) -> int | None:
    """Run `olive ARGS` in a fork of the server; its exit code, or None when no server."""
    with _server["lock"]:
        process = _server["process"]
        if process is None or process.poll() is not None or _server["env"] != env:
            if process is not None and process.poll() is None:
                process.stdin.close()
            process = subprocess.Popen([sys.executable, "-m", "slmlab.olive_runner"],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, env=env, text=True)
            _server.update(process=process, env=env)
        try:
            process.stdin.write(json.dumps({"args": args, "log": str(Path(log_path).resolve()),
                                            "cwd": str(cwd or os.getcwd())}) + "\n")
            process.stdin.flush()
            for line in process.stdout:
                if line.startswith(REPLY):
                    return int(line[len(REPLY):])
        except (BrokenPipeError, ValueError):
            pass
        _server["process"] = None  # it died (or could not import Olive): plain processes
        return None


def _run_child(request: dict) -> None:
    code = 1
    try:
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.chdir(request["cwd"])
        sys.argv = ["olive", *request["args"]]
        from olive.cli.launcher import main

        main(request["args"])
        code = 0
    except SystemExit as error:
        code = error.code if isinstance(error.code, int) else int(error.code is not None)
    except BaseException:  # noqa: BLE001 - whatever Olive raises ends in its log
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # the child must never return into the server's loop


def serve() -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    for line in sys.stdin:
        request = json.loads(line)
        child = os.fork()
        if child == 0:
            _run_child(request)
        _, status = os.waitpid(child, 0)
        print(REPLY + str(os.waitstatus_to_exitcode(status)), flush=True)


if __name__ == "__main__":
    serve()
