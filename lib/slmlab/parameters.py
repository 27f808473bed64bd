"""A lab's papermill parameters: its defaults, and whether this run keeps them.

A lab's headline targets (accuracy reached, ratios) are promises about its *default*
configuration. A learner who runs it with other parameters (`-p rank 8`, another seed, fewer
steps) is exploring: the lab then reports its figures against the targets instead of
failing on them. Correctness checks (parity, resume, a merge that reproduces outputs)
hold for every parameter set and stay asserted.
"""

import ast
import json
from pathlib import Path

from slmlab import REPO_ROOT

# Parameters that say where or how strictly to run, not what to run.
NOT_COMPARED = ("output_dir", "check_headlines")


def lab_defaults(lab: str, labs_dir: Path = REPO_ROOT / "labs") -> dict:
    """{name: value} of the cell tagged `parameters` in `labs_dir/<lab>.ipynb`."""
    notebook = json.loads((labs_dir / f"{lab}.ipynb").read_text())
    cell = next(c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", []))
    source = "".join(cell["source"])
    return {node.targets[0].id: ast.literal_eval(node.value)
            for node in ast.parse(source).body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}


def changed_parameters(lab: str, values: dict, labs_dir: Path = REPO_ROOT / "labs") -> dict:
    """{name: value} of this run's parameters that differ from the lab's defaults."""
    return {name: values[name] for name, default in lab_defaults(lab, labs_dir).items()
            if name not in NOT_COMPARED and name in values and values[name] != default}


def headline_checks(check_headlines: bool, lab: str, values: dict) -> bool:
    """Whether to assert the lab's headline targets in this run; says why when not.

    `values` is the notebook's `globals()`: the parameters as papermill set them.
    """
    if not check_headlines:
        print("Headline targets: reported, not asserted (check_headlines = False).")
        return False
    changed = changed_parameters(lab, values)
    if changed:
        listed = ", ".join(f"{name}={value!r}" for name, value in changed.items())
        print(f"Headline targets: reported, not asserted: this run changes {listed}, and the "
              "targets are promises about the defaults.")
        return False
    return True
