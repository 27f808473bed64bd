"""`make checkpoint LAB=NN`: build what lab NN needs from earlier labs, before it runs.

Labs 01 (as its teacher), 04, 05 and 06 start from lab 03's adapter (LoRA r, alpha 2r, the
text template, the tone training split). Each trains it itself when the course's cache has
no entry for it (`sft.train_adapter`, `artifact_cache`); this command trains it ahead of
time — before a workshop, or to open lab 06 without waiting — with the lab's own defaults,
read from its `parameters` cell, so the lab then loads it. Other labs need nothing from
earlier ones. It trains with torch's default threads (every core), as a JupyterLab kernel
does: the cache keys on the thread count, so `make course`, which gives each lab one thread,
trains its own.
"""

import argparse
from pathlib import Path

from slmlab import REPO_ROOT
from slmlab.parameters import lab_defaults

# lab -> its parameters that `sft.train_adapter` takes, as (argument, parameter name)
ADAPTER_ARGUMENTS: dict[str, dict[str, str]] = {
    "01_distillation": {"model_id": "teacher_id", "max_steps": "teacher_steps", "seed": "seed"},
    "04_qlora": {"model_id": "model_id", "r": "rank", "max_steps": "steps",
                 "learning_rate": "learning_rate", "seed": "seed"},
    "05_merge_int4_export": {"model_id": "model_id", "r": "rank", "max_steps": "train_steps",
                             "seed": "seed"},
    "06_olive_pipeline": {"model_id": "model_id", "r": "rank", "max_steps": "adapter_steps",
                          "seed": "seed"},
}


def notebook_of(lab: str, folder: Path = REPO_ROOT / "solutions") -> Path:
    """The notebook of `lab` ("5", "05" or "05_merge_int4_export")."""
    prefix = lab.split("_", 1)[0].zfill(2)
    matches = sorted(folder.glob(f"{prefix}_*.ipynb"))
    if not prefix.isdigit() or len(matches) != 1:
        labs = ", ".join(p.stem[:2] for p in sorted(folder.glob("[0-9][0-9]_*.ipynb")))
        raise SystemExit(f"no lab {lab!r}: use one of {labs}")
    return matches[0]


def adapter_settings(lab: str) -> dict | None:
    """The `sft.train_adapter` arguments lab `lab` uses with its defaults (None: no adapter)."""
    notebook = notebook_of(lab)
    arguments = ADAPTER_ARGUMENTS.get(notebook.stem)
    if arguments is None:
        return None
    values = lab_defaults(notebook.stem, notebook.parent)
    return {arg: values[name] for arg, name in arguments.items()}


def build(lab: str, cache_dir: Path | None = None) -> str:
    """Train (or find in the cache) what `lab` needs; returns what was done, in one line."""
    settings = adapter_settings(lab)
    name = notebook_of(lab).stem
    if settings is None:
        return f"{name} needs nothing from earlier labs: it builds all it uses itself"
    from slmlab import sft  # torch, transformers and peft: only when there is work to do

    _, _, info = sft.train_adapter(**settings, cache_dir=cache_dir)
    done = (f"trained in {info['train_seconds']} s and stored in the cache"
            if info["source"] == "trained" else "was already in the cache")
    return f"{name}: lab 03's adapter ({', '.join(f'{k}={v}' for k, v in settings.items())}) {done}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lab", help="the lab's number, e.g. 05")
    print(build(parser.parse_args().lab))
