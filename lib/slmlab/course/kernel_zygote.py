"""Notebook kernels started as forks of one process that imported the course's libraries.

Every lab's first cell imports torch, transformers, PEFT, TRL and datasets: ~8-11 s of one
core per kernel, and the test suite and `make course` start dozens of kernels. This module
is a Jupyter kernel provisioner (`slmlab-zygote`, registered in pyproject.toml) whose
kernels are forks of a *zygote* (`python -m slmlab.course.kernel_zygote`) that imported those
libraries once. A fork runs `python -m ipykernel_launcher -f CONNECTION_FILE` as the
kernel spec says, in its own session, with the working directory, environment and
standard streams a plain launch would give it, and its random generators reseeded from
the OS as a new process's are. One zygote per environment (libraries read it when
imported), started by the first kernel asked for: that kernel waits for the zygote's
imports instead of its own, and every later one starts at once. Processes forked from the
one that started a zygote (the course's pool of labs) ask the same zygote: each request
carries its own reply socket. Without a zygote (it could not start, or died), plain processes.
Selected with `JUPYTER_DEFAULT_PROVISIONER_NAME=slmlab-zygote` (`use_for_kernels`: the test
suite and the course runner); learners' Jupyter keeps the stock provisioner. A fork is
not the client's child, so the client cannot read its exit status: it reports -1.
"""

import atexit
import contextlib
import json
import os
import runpy
import select
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from typing import NoReturn

import psutil
from jupyter_client.provisioning import LocalProvisioner

from slmlab import tools

PROVISIONER = "slmlab-zygote"
SWITCH_VARIABLE = "SLMLAB_KERNEL_ZYGOTE"
PRELOAD = ("slmlab", "ipykernel.kernelapp", "torch", "transformers", "peft", "trl", "datasets",
           "slmlab.sft", "slmlab.metrics", "slmlab.task", "slmlab.train_loop", "slmlab.widgets")
# A zygote with no kernel left and no request for this long exits (its libraries hold ~0.5
# GB). The test suite sets a longer wait: a worker runs minutes of tests without a kernel
# between notebooks, and a new zygote costs ~12 s of one core to import again.
IDLE_VARIABLE = "SLMLAB_ZYGOTE_IDLE"
IDLE_SECONDS = float(os.environ.get(IDLE_VARIABLE, 120))
# ipykernel sets this before any user code runs; matplotlib reads it when imported
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"

_zygotes: dict[str, tuple[subprocess.Popen, socket.socket, int]] = {}  # + the zygote's pidfd
_forked: list[psutil.Process] = []  # the kernels this process asked a zygote for
_lock = threading.Lock()


def use_for_kernels() -> None:
    """Kernels that this process (and its children) start from now on are forks, where the
    provisioner is registered (an install older than pyproject.toml's entry point: plain)
    and unless SLMLAB_KERNEL_ZYGOTE=0 (plain kernels, to measure what the zygote saves)."""
    from importlib.metadata import entry_points

    if os.environ.get(SWITCH_VARIABLE) == "0":
        return
    if entry_points(group="jupyter_client.kernel_provisioners", name=PROVISIONER):
        os.environ["JUPYTER_DEFAULT_PROVISIONER_NAME"] = PROVISIONER


def zygote_pids() -> set[int]:
    """The live zygotes this process started or inherited from the process that forked it."""
    return {zygote[0].pid for zygote in _zygotes.values() if _alive(zygote)}


def forked_kernels() -> list[psutil.Process]:
    """The live kernels this process asked a zygote for (another process's are not its)."""
    _forked[:] = [kernel for kernel in _forked if kernel.is_running()]
    return list(_forked)


# Variables that differ from kernel to kernel and that only a running kernel reads, never a
# library at import: pytest names the running test in PYTEST_CURRENT_TEST (ipykernel reads it
# when its streams start), so under pytest every notebook had an environment of its own and
# every kernel started as the first, plain one.
# SLMLAB_NO_4BIT (`qlora.NO_4BIT_VARIABLE`) is read when a lab asks for 4 bit, not on import:
# the suite's runs of labs 04, 06 and 08 without 4 bit had a zygote of their own. The runner
# reads SLMLAB_CELL_TIMEOUT (`runner.CELL_TIMEOUT_VARIABLE`), a kernel never does.
PER_KERNEL_VARIABLES = frozenset({"JPY_SESSION_NAME", "PYTEST_CURRENT_TEST", "SLMLAB_NO_4BIT",
                                  "SLMLAB_CELL_TIMEOUT"})
# Variables a library sets in the process that imports it, for its own later use (both read
# at call time, not on import): onnxruntime_genai points ORT_LIB_PATH at its runtime, torch's
# inductor (which PEFT imports) names its cache folder. A test process that imported ORT-GenAI
# midway through the suite had one more variable, and its next kernel imported everything
# again in a zygote of its own (~12 s of one core).
SET_ON_IMPORT_VARIABLES = frozenset({"ORT_LIB_PATH", "TORCHINDUCTOR_CACHE_DIR"})


def _imported_with(env: dict) -> dict:
    """The environment a zygote imports under: the kernel's, less what differs per kernel
    and only the kernel reads (JPY_PARENT_PID stays: ipykernel reads it when imported), and
    what libraries set in the process that imports them."""
    ignored = PER_KERNEL_VARIABLES | SET_ON_IMPORT_VARIABLES
    return {k: v for k, v in env.items() if k not in ignored}


def _key(env: dict) -> str:
    # ipykernel reads JPY_PARENT_PID on import, but on POSIX only as a flag (nonzero: end
    # when the parent does, which it checks with getppid): the value, the asking process's
    # pid, would give each process of the course's pool a zygote of its own
    imported = _imported_with(env)
    if "JPY_PARENT_PID" in imported:
        imported["JPY_PARENT_PID"] = str(int(imported["JPY_PARENT_PID"] not in ("", "0")))
    return json.dumps(sorted(imported.items()))


class ForkedKernel:
    """The subprocess.Popen calls jupyter_client makes, for a kernel forked by a zygote."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        self.pid, self.returncode = pid, None
        try:  # a pidfd names this process even after its pid is reused
            self._pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._pidfd, self.returncode = None, -1

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._pidfd], [], [], 0)[0]:
            self.returncode = -1
            os.close(self._pidfd)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not select.select([self._pidfd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout)
        return self.poll()

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            signal.pidfd_send_signal(self._pidfd, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class ZygoteProvisioner(LocalProvisioner):
    """LocalProvisioner whose kernels are forks of a zygote (plain processes without one)."""

    async def launch_kernel(self, cmd: list[str], **kwargs):
        pid = fork_kernel(cmd, kwargs)
        if pid is None:
            return await super().launch_kernel(cmd, **kwargs)
        self.process, self.pid, self.pgid = ForkedKernel(pid), pid, pid  # its own session
        self.cwd = kwargs.get("cwd") or os.getcwd()
        return self.connection_info


def _stream(value, default: int) -> int | None:
    """The file descriptor a Popen argument names (None: inherit), or None for PIPE."""
    if value is None:
        return default
    if isinstance(value, int):
        return value if value >= 0 else (None if value == subprocess.PIPE else default)
    return value.fileno()


def fork_kernel(cmd: list[str], kwargs: dict) -> int | None:
    """Fork `cmd` (`python -m MODULE ARGS`) from the zygote for its environment: the
    kernel's pid, or None when it must be launched as a plain process."""
    if cmd[:2] != [sys.executable, "-m"] or len(cmd) < 3:
        return None
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        # jupyter_client gives a kernel a pipe as stdin that it never writes: /dev/null
        fds = [devnull, _stream(kwargs.get("stdout"), 1), _stream(kwargs.get("stderr"), 2)]
        if None in fds[1:]:  # the caller reads a pipe: only a plain launch gives it one
            return None
        env = dict(kwargs.get("env") or os.environ)
        if not kwargs.get("independent"):  # what jupyter_client's launch_kernel sets
            env["JPY_PARENT_PID"] = str(os.getpid())
        request = json.dumps({"module": cmd[2], "args": [os.path.expanduser(a) for a in cmd[3:]],
                              "env": env,
                              "cwd": str(kwargs.get("cwd") or os.getcwd())}).encode()
        key = _key(env)
        with _lock:
            zygote = _zygote(key, env)
            if zygote is None:
                return None
            # the answer comes on a socket of this request's own: processes forked from this
            # one share the zygote's connection, and must not read each other's answers
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                with ours:
                    socket.send_fds(zygote[1], [request], [*fds, theirs.fileno()])
                    theirs.close()  # the zygote holds it now: if it dies, recv sees the end
                    pid = int(json.loads(ours.recv(64))["pid"])
            except (OSError, ValueError, KeyError):  # it died: this kernel plain, the next
                _discard(key)                        # one starts a new zygote
                return None
            finally:
                theirs.close()
            with contextlib.suppress(psutil.Error):  # an ended kernel is nobody's work
                _forked.append(psutil.Process(pid))
            return pid
    finally:
        os.close(devnull)


def _alive(zygote: tuple[subprocess.Popen, socket.socket, int]) -> bool:
    """Whether a zygote runs, asked through its pidfd: it answers in a process forked from
    its starter too, where Popen.poll() cannot wait for it (and reports it ended)."""
    return not select.select([zygote[2]], [], [], 0)[0]


def _discard(key: str) -> None:
    """Forget a zygote: reap it if it ended (and this process started it), close this
    process's connection (the zygote exits when no client is left) and its pidfd."""
    zygote = _zygotes.pop(key, None)
    if zygote is not None:
        zygote[0].poll()
        zygote[1].close()
        os.close(zygote[2])


def _zygote(key: str, env: dict) -> tuple[subprocess.Popen, socket.socket, int] | None:
    zygote = _zygotes.get(key)
    if zygote is not None and _alive(zygote):
        return zygote
    _discard(key)  # it ended
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    zygote_env = _imported_with(env)
    try:
        process = subprocess.Popen([sys.executable, "-m", "slmlab.course.kernel_zygote",
                                    str(theirs.fileno())], pass_fds=[theirs.fileno()],
                                   env=zygote_env, stdin=subprocess.DEVNULL)
    except OSError:
        return None
    finally:
        theirs.close()
    _zygotes[key] = (process, ours, os.pidfd_open(process.pid))
    return _zygotes[key]


def _exit_with_outcome(work: Callable[[], None]) -> NoReturn:
    """End this fork as a process that ran `work` would: exit code 0, a SystemExit's code,
    or 1 with the traceback on stderr; atexit functions run and streams flushed, as an
    interpreter's exit does. A fork must never return into the zygote's loop."""
    code = 1
    try:
        work()
        code = 0
    except SystemExit as error:
        code = error.code if isinstance(error.code, int) else int(error.code is not None)
    except BaseException:  # noqa: BLE001 - whatever the kernel raises ends on its stderr
        traceback.print_exc()
    finally:
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)


# --- the zygote itself: `python -m slmlab.course.kernel_zygote FD` -------------------------

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
        tools.seed_generators(None)  # from the OS, as a new process seeds
        sys.argv = [request["module"], *request["args"]]
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)

    _exit_with_outcome(work)


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
