"""The IOPub flood that failed lab 04 under nbval on slower CPUs (issue 11).

`tests/notebooks/iopub_flood.ipynb` is also collected by nbval itself, with the
repository's conftest.py, and must pass there. This test shows that the notebook really
reproduces the failure when the fix is off: if it ever stops failing, nbval or ZeroMQ
has changed and the fix in conftest.py may no longer be needed.
"""

import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).parent / "notebooks" / "iopub_flood.ipynb"


@pytest.mark.slow
def test_flood_loses_messages_without_the_fix(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--noconftest", "--nbval-lax", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), "-q", str(NOTEBOOK)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 1, result.stdout[-2000:]
    assert "Timeout of 5 seconds exceeded waiting for output" in result.stdout
    received = result.stdout.count("unhandled iopub msg: update_display_data")
    assert received < 4000, f"{received} of 4000 updates arrived: none were dropped"
