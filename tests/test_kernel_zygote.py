"""Kernels forked from a zygote behave as plainly launched kernels do
(slmlab.course.kernel_zygote)."""

import json
import multiprocessing
import os
import secrets
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import psutil
import pytest
from jupyter_client import KernelManager

from slmlab import qlora
from slmlab.course import kernel_zygote
from slmlab.course.runner import CELL_TIMEOUT_VARIABLE
from slmlab.course.tree_memory import TreeMemory

# An environment of this module's own, so its kernels come from a zygote of their own (one
# for the module: conftest keeps its tests on one worker), which ends soon after them.
ZYGOTE_ENV = dict(os.environ, ZYGOTE_TEST=secrets.token_hex(4),
                  **{kernel_zygote.IDLE_VARIABLE: "20"})

REPORT = ("import json, os, random, sys, torch\n"
          "print(json.dumps({'pid': os.getpid(), 'ppid': os.getppid(), 'cwd': os.getcwd(),"
          " 'marker': os.environ.get('ZYGOTE_TEST'),"
          " 'test': os.environ.get('PYTEST_CURRENT_TEST'), 'path': sys.path,"
          " 'draws': [random.random(), torch.rand(1).item()],"
          " 'session': os.getsid(0) == os.getpid(), 'torch_loaded_first': 'peft' in sys.modules}))")


def run_cell(client, code: str, timeout: float = 60) -> tuple[str, dict]:
    """(stdout, reply content) of one cell."""
    msg_id = client.execute(code)
    printed = ""
    while True:
        message = client.get_iopub_msg(timeout=timeout)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        if message["msg_type"] == "stream":
            printed += message["content"]["text"]
        if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
            break
    return printed, client.get_shell_msg(timeout=timeout)["content"]


@pytest.fixture
def start_kernel(tmp_path):
    managers = []

    def start(env: dict, **launch):
        manager = KernelManager(kernel_name="python3")
        manager.start_kernel(env=env, cwd=str(tmp_path), **launch)
        client = manager.client()
        client.start_channels()
        client.wait_for_ready(timeout=120)
        managers.append((manager, client))
        return manager, client

    yield start
    for manager, client in managers:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


@pytest.mark.slow
def test_kernels_are_forks_that_behave_as_a_plain_kernel(start_kernel, tmp_path):
    assert os.environ["JUPYTER_DEFAULT_PROVISIONER_NAME"] == kernel_zygote.PROVISIONER
    # The first kernel reads its output through a pipe, which only a plain launch gives: the
    # plain kernel to compare with. The next two are forks of the module's zygote.
    env = ZYGOTE_ENV
    reports = []
    for notebook in range(3):
        # pytest names the running test in the environment (nbval: each notebook's cells):
        # another value there is still the same environment for the libraries
        test = f"solutions/0{notebook}_lab.ipynb::Cell 0 (setup)"
        launch = {"stdout": subprocess.PIPE} if notebook == 0 else {}
        _, client = start_kernel(dict(env, PYTEST_CURRENT_TEST=test), **launch)
        printed, reply = run_cell(client, REPORT)
        assert reply["status"] == "ok", reply
        reports.append(json.loads(printed))
    plain, *forks = reports
    zygotes = kernel_zygote.zygote_pids()
    assert plain["ppid"] == os.getpid()
    assert all(f["ppid"] in zygotes and f["ppid"] != os.getpid() for f in forks), forks
    assert forks[0]["torch_loaded_first"] and not plain["torch_loaded_first"]
    for report in reports:  # what a plain launch gives a kernel
        assert report["cwd"] == str(tmp_path)
        assert report["path"] == plain["path"]  # where imports look, as in a plain kernel
        assert report["marker"] == env["ZYGOTE_TEST"]
        assert report["session"], "a kernel leads its own session (killpg reaches only it)"
    assert [r["test"][:12] for r in reports] == [f"solutions/0{n}" for n in range(3)]
    # each fork draws from the OS as a new process does, not from the zygote's state
    assert len({tuple(r["draws"]) for r in reports}) == 3


@pytest.mark.slow
def test_a_forked_kernel_is_interrupted_writes_to_the_callers_stderr_and_ends(start_kernel,
                                                                             tmp_path):
    env = ZYGOTE_ENV
    log = tmp_path / "stderr.log"
    terminal = os.dup(2)
    with open(log, "wb") as file:
        os.dup2(file.fileno(), 2)
    try:
        manager, client = start_kernel(env)
    finally:
        os.dup2(terminal, 2)
        os.close(terminal)
    assert isinstance(manager.provisioner.process, kernel_zygote.ForkedKernel)
    run_cell(client, "import os; os.write(2, b'written by the kernel\\n')")
    assert "written by the kernel" in log.read_text()
    # interrupt: jupyter_client signals the kernel's process group
    msg_id = client.execute("import time\ntime.sleep(60)")
    time.sleep(2)
    manager.interrupt_kernel()
    started = time.monotonic()
    while True:
        reply = client.get_shell_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert time.monotonic() - started < 20
    pid = manager.provisioner.pid
    client.stop_channels()
    manager.shutdown_kernel(now=True)
    assert not manager.is_alive()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.slow
def test_tree_memory_counts_the_kernels_a_zygote_forks_while_measuring(start_kernel):
    env = ZYGOTE_ENV
    start_kernel(env)  # the zygote exists now, started before the measurement
    with TreeMemory(include_self=False, every_s=0.05) as memory:
        _, client = start_kernel(env)
        run_cell(client, "import torch, time\nheld = torch.ones(300_000_000 // 4)\n"
                         "time.sleep(1)")
    assert memory.peak_mb >= 280, memory.peak_mb


def test_a_kernel_command_that_is_not_a_python_module_launches_plainly():
    assert kernel_zygote.fork_kernel(["/bin/true"], {}) is None
    assert kernel_zygote.fork_kernel([sys.executable, "script.py"], {}) is None
    # a caller that reads the kernel's output through a pipe gets a plain process
    assert kernel_zygote.fork_kernel([sys.executable, "-m", "ipykernel_launcher"],
                                     {"stdout": subprocess.PIPE}) is None


def _kernel_in_a_fork(env: dict) -> tuple[int, int, list[int]]:
    """In a process forked from the test's, as the course's pool forks: start a kernel and
    return (its pid, its parent's pid, the kernels this process counts as its own)."""
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env)
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        printed, _ = run_cell(client, "import os; print(os.getppid())")
        return manager.provisioner.pid, int(printed), [k.pid for k in
                                                       kernel_zygote.forked_kernels()]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


@pytest.mark.slow
def test_a_process_forked_from_the_zygotes_starter_asks_the_same_zygote(start_kernel):
    """The course's pool forks its lab processes from the runner (and the suite's pool tests
    from a worker that has a zygote): they ask that zygote instead of importing again, each
    gets its own answer, and each counts only the kernels it asked for (TreeMemory)."""
    manager, _ = start_kernel(ZYGOTE_ENV)  # the zygote exists now
    zygotes = kernel_zygote.zygote_pids()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        kernel, parent, counted = pool.submit(_kernel_in_a_fork, ZYGOTE_ENV).result(timeout=180)
    assert parent in zygotes, "a fork of the zygote this process started, not of a new one"
    assert kernel in counted  # the fork's own work ...
    ours = [k.pid for k in kernel_zygote.forked_kernels()]
    assert manager.provisioner.pid in ours and kernel not in ours  # ... and not this one's


def test_variables_only_a_kernel_reads_do_not_make_another_zygote():
    env = {"PATH": "/bin", "OMP_NUM_THREADS": "1"}
    key = kernel_zygote._key(dict(env, JPY_PARENT_PID="101"))
    # another asking process (the course's pool); a lab run without 4 bit (read when a lab
    # asks for 4 bit); another cell timeout (read by the runner); pytest's running test
    assert kernel_zygote._key(dict(env, JPY_PARENT_PID="202", PYTEST_CURRENT_TEST="t",
                                   **{qlora.NO_4BIT_VARIABLE: "1",
                                      CELL_TIMEOUT_VARIABLE: "2"})) == key
    # what importing ORT-GenAI and PEFT sets in a test process midway through the suite
    import onnxruntime_genai  # noqa: F401
    import peft  # noqa: F401

    set_on_import = {k: os.environ[k] for k in ("ORT_LIB_PATH", "TORCHINDUCTOR_CACHE_DIR")}
    assert kernel_zygote._key(dict(env, JPY_PARENT_PID="101", **set_on_import)) == key
    # ipykernel's flag is set or not; libraries read the number of threads on import
    assert kernel_zygote._key(env) != key
    assert kernel_zygote._key(dict(env, JPY_PARENT_PID="101", OMP_NUM_THREADS="2")) != key
