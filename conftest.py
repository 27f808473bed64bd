"""Repository-wide pytest setup, loaded for every test path (tests/, solutions/, labs/).

nbval reads a kernel's IOPub channel only after the cell's execute reply. ZeroMQ's PUB/SUB
sockets queue at most 1,000 messages on each side (the default high-water marks) and
*drop* the rest silently, so a cell that sends more than ~2,000 outputs — a progress bar on
a slow CPU sends a few per second — loses its last messages, among them the kernel's
"idle" status, and nbval fails with "Timeout of 5 seconds exceeded waiting for output".
An unlimited receive queue on the test's kernel client keeps every message, at any CPU
speed (tests/notebooks/iopub_flood.ipynb reproduces the flood; tests/test_iopub_flood.py
shows it fails without this).
"""

import os
import sys
from pathlib import Path

import nbval.plugin
import pytest
import zmq
from jupyter_client.client import KernelClient

from slmlab import REPO_ROOT, RUNS_DIR
from slmlab.course.runner import CELL_TIMEOUT_VARIABLE

_start_channels = KernelClient.start_channels


def _start_channels_keeping_every_message(self, *args, **kwargs):
    # default socket option of the client's context: applies to the channels opened next
    self.context.setsockopt(zmq.RCVHWM, 0)  # 0 = no limit: queue, never drop
    return _start_channels(self, *args, **kwargs)


KernelClient.start_channels = _start_channels_keeping_every_message

# A cell that gets no answer fails its test after 10 minutes instead of hanging the suite
# (the longest cell takes about 3 at one thread). nbval: --nbval-cell-timeout in pyproject;
# papermill runs (slmlab.course.run_lab, and the course runner's pool) read this variable.
os.environ.setdefault(CELL_TIMEOUT_VARIABLE, "600")


# --- solutions/ under nbval write apart from the learner's runs ---------------------------
# A lab's default output_dir is "../runs/NN", relative to the kernel's working directory,
# and nbval starts each kernel in the notebook's folder: executing solutions/ would overwrite
# the learner's runs/NN (their figures, and the exercises.json `make progress` reads). Those
# kernels start in runs/solutions/notebooks/ instead, so the solutions' runs land in
# runs/solutions/runs/NN. Only output_dir is relative in the labs; the rest comes from slmlab.
SOLUTIONS_DIR = REPO_ROOT / "solutions"
SOLUTIONS_KERNEL_CWD = RUNS_DIR / "solutions" / "notebooks"


def nbval_kernel_cwd(cwd: str | None) -> str | None:
    """Where nbval's kernel for a notebook in `cwd` starts: solutions' kernels apart."""
    if cwd is None or Path(cwd).resolve() != SOLUTIONS_DIR:
        return cwd
    SOLUTIONS_KERNEL_CWD.mkdir(parents=True, exist_ok=True)
    return str(SOLUTIONS_KERNEL_CWD)


class _KernelWithSolutionsApart(nbval.plugin.RunningKernel):
    def __init__(self, kernel_name, cwd=None, **kwargs):
        super().__init__(kernel_name, cwd=nbval_kernel_cwd(cwd), **kwargs)


nbval.plugin.RunningKernel = _KernelWithSolutionsApart


# --- Two workers (`make test` runs `pytest -n 2`) --------------------------------------
# Kernel starts, imports, Olive subprocesses and ONNX builds run on one core, so two
# workers with one thread each finish the suite sooner than one worker with two threads.
# Two workers with two threads each would oversubscribe the cores (OpenMP threads then
# spin against each other and a job can run ~15x slower), hence one thread per worker; the
# kernels nbval and papermill start inherit it through the environment.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER") and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


# Test modules whose tests share an expensive module-scoped fixture (the viability LoRA
# run, a JupyterLab server, an Olive process): their tests stay on one
# worker, or each worker would build it.
SHARED_FIXTURE_MODULES = {"tests/test_viability.py", "tests/test_browser.py",
                          "tests/test_olive_pipeline.py"}  # one process imports Olive's telemetry


@pytest.hookimpl(optionalhook=True)  # an xdist hook: unknown when xdist is not loaded
def pytest_xdist_make_scheduler(config, log):
    """Each notebook's cells on one worker, in order, and the tests of each module in
    SHARED_FIXTURE_MODULES; every other test on its own.

    nbval's cells share one kernel. xdist's `loadgroup` cannot group them under pytest 9
    (it renames node ids, which pytest 9 no longer reads), and `loadscope` would also
    bind all of a test module's tests (the nine quick lab runs) to one worker.
    """
    from xdist.scheduler import LoadScopeScheduling

    # hand out work in collection order, which pytest_collection_modifyitems sets (longest
    # first), not xdist's default order by the number of tests in a scope
    config.option.loadscopereorder = False

    class NotebookScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path.endswith(".ipynb") or path in SHARED_FIXTURE_MODULES else nodeid

    return NotebookScheduling(config, log)


# Lab 03 trains its recipe's adapter about a minute in and shares it through the cache
# (`sft.share_adapter`); labs 01 and 04-06 and the viability test load it. Handed out first,
# it has stored the adapter before any of them asks; otherwise the first to ask trains it too.
SOLUTIONS_ORDER = {"03": 9.5}  # lab -> the number it is sorted as (higher goes first)


def _expected_cost(item: pytest.Item) -> tuple[int, float]:
    """Sort key, longest work first: solution notebooks, then the quick lab runs, then other
    slow tests, then the fast ones. Later labs train more (06-08 take the longest), so a
    higher lab number goes first. Two workers finish together only when the long items do
    not start last."""
    path = item.nodeid.split("::", 1)[0]
    lab = item.nodeid.rsplit("/", 1)[-1][:2]
    number = int(lab) if lab.isdigit() else 0
    if path.startswith("solutions/") and path.endswith(".ipynb"):
        return 0, -SOLUTIONS_ORDER.get(lab, number)
    if "test_labs_run.py::test_lab_runs_end_to_end" in item.nodeid:
        number = int(item.nodeid.split("[", 1)[1][:2])
        return 1, -number
    return (2, 0) if item.get_closest_marker("slow") else (3, 0)


_RATE_AT_START = pytest.StashKey[float]()


def pytest_collection_modifyitems(config, items):
    # a stable sort: a notebook's cells keep their order
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=_expected_cost)


def pytest_sessionstart(session):
    """The machine's matmul rate before any worker starts (`slmlab.bench.gflops_with_threads`):
    the summary line names it beside the rate at the end."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        from slmlab.course.bench import gflops_with_threads

        session.config.stash[_RATE_AT_START] = gflops_with_threads()


def pytest_terminal_summary(terminalreporter):
    """The machine's matmul rate as the run ends, measured by the first process once the
    workers are done (`slmlab.bench.speed_line`), beside the rate at its start: one thread,
    as each worker ran."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        from slmlab.course.bench import speed_line

        terminalreporter.write_line(speed_line(
            rate_at_start=terminalreporter.config.stash.get(_RATE_AT_START, None)))
