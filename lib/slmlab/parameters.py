"""A lab's papermill parameters: checked at the top of the lab, and whether it keeps them.

Each lab's first code cell after its parameters calls `check_parameters(lab, globals())`: a
mistyped or out-of-range parameter stops the lab there with one line naming the
parameter, the value and what is allowed, instead of a library traceback minutes later.

A lab's headline targets (accuracy reached, ratios) are promises about its *default*
configuration. A learner who runs it with other parameters (`-p rank 8`, another seed, fewer
steps) is exploring: the lab then reports its figures against the targets instead of
failing on them. Correctness checks (parity, resume, a merge that reproduces outputs)
hold for every parameter set and stay asserted.
"""

import ast
import functools
import json
import re
from pathlib import Path

from slmlab import REPO_ROOT, RUNS_DIR, saving

# Parameters that say where or how strictly to run, not what to run.
NOT_COMPARED = ("output_dir", "check_headlines")
# (a, b): parameter a must stay below parameter b when a lab has both
BELOW = [("interrupt_at", "max_steps")]  # lab 03 "kills" its run at interrupt_at, resumes
# Labs that export their model with the onnxruntime-genai builder: a model it cannot run
# stops them at the top, not after minutes of training.
EXPORTING_LABS = ("05_merge_int4_export", "06_olive_pipeline")
# Labs that train or export: a hub model (3.8 B parameters) there needs a GPU; the tour
# (lab 00) only loads and generates, which a large-memory CPU can do slowly.
GPU_FOR_HUB_LABS = ("01_", "02_", "03_", "04_", "05_", "06_", "07_", "08_")


class ParameterError(ValueError):
    """A lab parameter with the wrong type or out of range (one line: name, value, rule)."""


@functools.cache  # read once per run: validate, the comments and the defaults all need it
def _parameters_cell(lab: str, labs_dir: Path) -> str:
    notebook = json.loads((labs_dir / f"{lab}.ipynb").read_text())
    cell = next(c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", []))
    return "".join(cell["source"])


def lab_defaults(lab: str, labs_dir: Path = REPO_ROOT / "labs") -> dict:
    """{name: value} of the cell tagged `parameters` in `labs_dir/<lab>.ipynb`."""
    return {node.targets[0].id: ast.literal_eval(node.value)
            for node in ast.parse(_parameters_cell(lab, labs_dir)).body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}


def _comments(lab: str, labs_dir: Path) -> dict[str, str]:
    lines = _parameters_cell(lab, labs_dir).splitlines()
    return {m.group(1): m.group(2) for m in map(re.compile(r"(\w+) =.*?#(.*)").match, lines) if m}


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _rule(name: str, default, comment: str) -> tuple[str, object]:
    """(what is allowed, in words; a predicate) for one parameter, from its default's type."""
    if isinstance(default, bool):
        return "True or False", lambda v: isinstance(v, bool)
    if isinstance(default, int):
        if "seed" in name:  # numpy's generator, which transformers.set_seed seeds, takes 32 bits
            return (f"a whole number from 0 to {2**32 - 1}",
                    lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32)
        # the comment may raise the floor: "0: skip" allows 0, "at least N" asks for N
        at_least = re.search(r"at least (\d+)", comment)
        low = int(at_least.group(1)) if at_least else 0 if "0: skip" in comment else 1
        return (f"a whole number >= {low}",
                lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low)
    if isinstance(default, float):
        if name == "alpha":
            return "a number from 0 to 1", lambda v: _is_number(v) and 0 <= v <= 1
        if any(word in name for word in ("rate", "lr", "temperature")):
            return "a number > 0", lambda v: _is_number(v) and v > 0
        return "a number >= 0", lambda v: _is_number(v) and v >= 0
    if isinstance(default, list):
        empty_ok = "empty list" in comment
        return (f"a list of whole numbers >= 1{'' if empty_ok else ', not empty'}",
                lambda v: isinstance(v, list) and (empty_ok or v) and all(
                    isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v))
    return "text", lambda v: isinstance(v, str)


def validate(lab: str, values: dict, labs_dir: Path = REPO_ROOT / "labs") -> None:
    """Raise ParameterError (one line) for the first parameter that breaks its rule."""
    from slmlab import zoo  # here, not at the top: zoo imports torch and transformers

    comments = _comments(lab, labs_dir)
    for name, default in lab_defaults(lab, labs_dir).items():
        value = values.get(name, default)
        allowed, ok = _rule(name, default, comments.get(name, ""))
        if not ok(value):
            text = ("; papermill's -p passes what it cannot parse as text: use "
                    f"-y \"{name}: ...\"" if isinstance(value, str) else "")
            raise ParameterError(f"{lab}: parameter {name} = {value!r} must be {allowed}{text}")
        if name.endswith("_id") and value not in zoo.ZOO and not Path(value).is_dir() \
                and "/" not in value:
            raise ParameterError(f"{lab}: parameter {name} = {value!r} is not a zoo model "
                                 f"({', '.join(zoo.ZOO)}), a local model directory or a hub "
                                 "ID (owner/name)")
        if name.endswith("_id") and zoo.is_hub_id(value) and lab.startswith(GPU_FOR_HUB_LABS):
            _check_gpu_for_hub_model(lab, name, value)
        if name == "model_id" and lab in EXPORTING_LABS and (value in zoo.ZOO
                                                             or Path(value).is_dir()):
            _check_exportable(lab, value)
        for low, high in BELOW:
            if name == low and high in values and not value < values[high]:
                raise ParameterError(f"{lab}: parameter {low} = {value!r} must be below "
                                     f"{high} = {values[high]!r}")
        if name == "output_dir":
            where = Path(value).resolve()
            for protected in (REPO_ROOT / "labs", REPO_ROOT / "solutions"):
                if where == protected or protected in where.parents:
                    raise ParameterError(f"{lab}: parameter output_dir = {value!r} is inside "
                                         f"{protected.name}/; write runs elsewhere (runs/)")


def _check_gpu_for_hub_model(lab: str, name: str, model_id: str) -> None:
    import torch  # here, not at the top: a slow import

    from slmlab import zoo

    if not torch.cuda.is_available():
        raise ParameterError(
            f"{lab}: parameter {name} = {model_id!r} is a hub model of billions of parameters: "
            "this lab trains it, which needs a CUDA GPU (lab 08's memory plan: QLoRA or LoRA "
            "with gradient checkpointing fits a 16 GB T4), and this machine has none; on a "
            f"CPU use {' or '.join(zoo.ZOO)}")


def _check_exportable(lab: str, model_id: str) -> None:
    from slmlab import export, zoo  # here, not at the top: they import torch

    try:
        problem = export.export_problem(zoo.resolve(model_id))
    except zoo.ModelNotAvailable:
        return  # the lab's own load says so in its words
    if problem:
        raise ParameterError(f"{lab}: parameter model_id = {model_id!r} cannot be exported "
                             f"for ORT-GenAI on CPU: {problem}")


def changed_parameters(lab: str, values: dict, labs_dir: Path = REPO_ROOT / "labs") -> dict:
    """{name: value} of this run's parameters that differ from the lab's defaults."""
    return {name: values[name] for name, default in lab_defaults(lab, labs_dir).items()
            if name not in NOT_COMPARED and name in values and values[name] != default}


def default_output_dir(lab: str, output_dir: str) -> str:
    """The lab's default output_dir ("../runs/NN", relative to the notebook's folder) where
    this kernel can use it: as it is when it lands under runs/, else runs/NN. A kernel
    started elsewhere (papermill run from the repository root, a hosted notebook) would
    otherwise write the run outside the course, where no report or `make progress` looks."""
    if RUNS_DIR.resolve() in Path(output_dir).resolve().parents:
        return output_dir
    anchored = str(RUNS_DIR / Path(output_dir).name)
    print(f"output_dir: the default {output_dir!r} is relative to the notebook's folder and "
          f"this kernel started in {Path.cwd()}: this run goes to {anchored}")
    return anchored


def check_parameters(lab: str, values: dict) -> bool:
    """Validate this run's parameters, then say whether the lab asserts its headline targets.

    `values` is the notebook's `globals()`: the parameters as papermill set them. The one
    call at the top of every lab; it also gives the run a clean `output_dir`
    (`saving.start_run`), and points the default one at runs/ when the kernel started
    outside the notebook's folder (`default_output_dir`: it sets `output_dir` in `values`).
    """
    from slmlab import environment, exercises  # here, not at the top: they import torch

    environment.warn_if_off_pin()
    validate(lab, values)
    if values.get("output_dir") == lab_defaults(lab).get("output_dir"):
        values["output_dir"] = default_output_dir(lab, values["output_dir"])
    if "output_dir" in values:
        saving.start_run(lab, values["output_dir"])
        exercises.record_to(values["output_dir"])  # what `make progress` reads
    return headline_checks(values.get("check_headlines", True), lab, values)


def headline_checks(check_headlines: bool, lab: str, values: dict) -> bool:
    """Whether to assert the lab's headline targets in this run; says why when not."""
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
