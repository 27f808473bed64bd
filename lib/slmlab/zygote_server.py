"""The zygote itself (`python -m slmlab.zygote_server FD`, started by `kernel_zygote`): it
imports the course's libraries once, then forks one kernel per request that arrives on its
socket, each becoming the process a plain kernel launch would have started."""

import json
import os
import select
import signal
import socket
import sys
from typing import NoReturn

from slmlab import tool_server
from slmlab.kernel_zygote import IDLE_SECONDS, INLINE_BACKEND, PRELOAD


def _child(request: dict, fds: list[int], reply: int, ready: int,
           connection: socket.socket) -> NoReturn:
    """In the fork: become the kernel process a plain launch would have started; it never
    returns into the zygote's loop."""
    def work() -> None:
        os.setsid()  # its own session and process group, as jupyter_client starts kernels
        os.write(ready, b"x")
        os.close(ready)
        os.close(reply)
        connection.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # kernel interrupts
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[0] = request["cwd"]  # as `python -m` puts the working directory first
        tool_server.seed_imported_generators(None)  # from the OS, as a new process seeds
        tool_server._run_as_main(request["module"], request["args"])

    tool_server.exit_with_outcome(work, run_atexit=True)  # a kernel ends as a process does


def serve(connection: socket.socket) -> None:
    """Import PRELOAD, then fork a kernel per request until every client is gone, or until
    IDLE_SECONDS pass with no kernel alive and no request. No threads: fork copies only the
    calling one."""
    os.environ.setdefault("MPLBACKEND", INLINE_BACKEND)
    for name in PRELOAD:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a kernel imports what it needs itself
            pass
    children: set[int] = set()
    while True:
        for pid in list(children):  # reap the kernels that ended
            if os.waitpid(pid, os.WNOHANG)[0]:
                children.discard(pid)
        if not select.select([connection], [], [], IDLE_SECONDS if not children else 1.0)[0]:
            if not children:
                return
            continue
        message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 4)
        if not message:  # every client is gone; their kernels see it and end
            return
        *fds, reply = fds
        ready, signal_ready = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(ready)
            _child(json.loads(message), fds, reply, signal_ready, connection)
        os.close(signal_ready)
        os.read(ready, 1)  # its setsid() is done: killpg(pid) reaches the kernel only
        os.close(ready)
        for fd in fds:
            os.close(fd)
        children.add(pid)
        with socket.socket(fileno=reply) as answer:
            answer.send(json.dumps({"pid": pid}).encode())


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
