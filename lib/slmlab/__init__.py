"""slmlab: the helper package of the Phi-3 small-language-model course.

One flat module per concept; labs import from here and never copy code.
"""

from pathlib import Path

__version__ = "0.1.0"

# The repository root: lib/slmlab/__init__.py -> parents[2]. Labs and scripts resolve
# data/ and models/ from here so they work from any working directory.
REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "data"
MODELS_DIR = REPO_ROOT / "models"
RUNS_DIR = REPO_ROOT / "runs"
