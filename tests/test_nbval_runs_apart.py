"""solutions/ executed by nbval (`make test`) must not overwrite the learner's runs/NN."""

import nbval.plugin
import pytest

from slmlab import REPO_ROOT, RUNS_DIR
from slmlab.course.runner import QUICK_PARAMETERS
from slmlab.parameters import lab_defaults


@pytest.fixture
def root_conftest(pytestconfig):
    """The repository's conftest.py as pytest loaded it (tests/ has a conftest of its own)."""
    return next(plugin for plugin in pytestconfig.pluginmanager.get_plugins()
                if getattr(plugin, "__file__", None) == str(REPO_ROOT / "conftest.py"))


def test_solution_kernels_start_where_their_default_output_dir_is_apart(root_conftest):
    cwd = root_conftest.nbval_kernel_cwd(str(REPO_ROOT / "solutions"))
    for lab in QUICK_PARAMETERS:
        default = lab_defaults(lab, REPO_ROOT / "solutions")["output_dir"]
        where = (REPO_ROOT / "solutions" / cwd / default).resolve()
        assert where == RUNS_DIR / "solutions" / "runs" / lab
        assert RUNS_DIR / lab != where


def test_other_notebooks_keep_their_folder_and_nbval_uses_the_patched_kernel(root_conftest):
    notebooks = str(REPO_ROOT / "tests" / "notebooks")
    assert root_conftest.nbval_kernel_cwd(notebooks) == notebooks
    assert root_conftest.nbval_kernel_cwd(None) is None
    assert nbval.plugin.RunningKernel is root_conftest._KernelWithSolutionsApart
