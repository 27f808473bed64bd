"""Resume a killed training run from its last *complete* checkpoint.

The Hugging Face Trainer writes a checkpoint file by file (weights, optimizer, scheduler,
RNG state, then `trainer_state.json`), and `resume_from_checkpoint=True` takes the
highest-numbered `checkpoint-N` folder whether or not it was written to the end. A run
killed during a save (a closed laptop lid, a kernel killed for memory) then crashes when
it resumes. `resume_point(output_dir)` checks the checkpoints newest first and returns
the newest complete one for `trainer.train(resume_from_checkpoint=...)`; each newer,
incomplete one is renamed `checkpoint-N.incomplete` (kept to look at, out of the
Trainer's way) with one line saying what is wrong with it.

A checkpoint is complete when `trainer_state.json` parses, the model or adapter weights
and the optimizer, scheduler and RNG state exist, and none of its files is cut short
(safetensors: the header's tensor offsets reach the file's end; `.pt`/`.pth`/`.bin`:
torch's zip archive has its closing directory). Checking never unpickles anything.
"""

import json
import os
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

PREFIX = "checkpoint-"
WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin", "model.safetensors",
           "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
STATE = {"optimizer": ("optimizer.pt", "optimizer.bin"), "scheduler": ("scheduler.pt",),
         "RNG state": ("rng_state.pth",)}


def checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The `checkpoint-N` folders in `output_dir`, newest (highest N) first."""
    found = [p for p in Path(output_dir).glob(f"{PREFIX}*")
             if p.is_dir() and p.name[len(PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]), reverse=True)


def _safetensors_problem(path: Path) -> str | None:
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            return f"{path.name} is empty" if not head else f"{path.name} is truncated"
        (header_size,) = struct.unpack("<Q", head)
        try:
            header = json.loads(handle.read(header_size))
        except ValueError:
            return f"{path.name} is truncated"
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"),
              default=0)
    if path.stat().st_size < 8 + header_size + end:
        return f"{path.name} is truncated"
    return None


def _file_problem(path: Path) -> str | None:
    """What is wrong with one checkpoint file, or None."""
    if path.stat().st_size == 0:
        return f"{path.name} is empty"
    if path.suffix == ".safetensors":
        return _safetensors_problem(path)
    if path.suffix == ".json":
        try:
            json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            return f"{path.name} is truncated"
    elif path.suffix in (".pt", ".pth", ".bin") and not zipfile.is_zipfile(path):
        return f"{path.name} is truncated"  # torch.save writes a zip: its end is missing
    return None


def checkpoint_problem(folder: str | os.PathLike) -> str | None:
    """Why the checkpoint in `folder` cannot be resumed from, or None when it is complete."""
    folder = Path(folder)
    state = folder / "trainer_state.json"
    if not state.is_file():
        return "trainer_state.json is missing"
    if (problem := _file_problem(state)) is not None:
        return problem
    if "global_step" not in json.loads(state.read_text()):
        return "trainer_state.json has no global_step"
    # FSDP and DeepSpeed (accelerate) keep weights and optimizer state in their own files
    sharded = [*folder.glob("pytorch_model_fsdp*"), *folder.glob("global_step*")]
    if not any((folder / name).is_file() for name in WEIGHTS) and not sharded:
        return "the model or adapter weights are missing"
    for what, names in STATE.items():
        present = any((folder / n).is_file() for n in names) or (
            what == "optimizer" and (any(folder.glob("optimizer_*")) or sharded)) or (
            what == "RNG state" and any(folder.glob("rng_state_*.pth")))  # one per process
        if not present:
            return f"the {what} ({names[0]}) is missing"
    shards = folder / "model.safetensors.index.json"
    if shards.is_file() and _file_problem(shards) is None:
        for shard in set(json.loads(shards.read_text()).get("weight_map", {}).values()):
            if not (folder / shard).is_file():
                return f"the weights shard {shard} is missing"
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p != state):
        if (problem := _file_problem(path)) is not None:
            return problem
    return None


def last_complete_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint in `output_dir`, or None. Changes nothing."""
    return next((c for c in checkpoints(output_dir) if checkpoint_problem(c) is None), None)


def _set_aside(folder: Path) -> Path:
    """Rename an incomplete checkpoint out of the Trainer's way (it would resume from it,
    or write a new checkpoint into the half-written folder); return its new path."""
    target, number = folder.with_name(f"{folder.name}.incomplete"), 1
    while target.exists():
        number += 1
        target = folder.with_name(f"{folder.name}.incomplete-{number}")
    folder.rename(target)
    return target


def resume_point(output_dir: str | os.PathLike, say: Callable[[str], None] = print) -> str | None:
    """The checkpoint to pass as `trainer.train(resume_from_checkpoint=...)`: the newest
    complete one in `output_dir`, or None to start from the beginning.

    Says one line for each newer, incomplete checkpoint (what is wrong, where it was
    moved) and one line when there is nothing to resume from. Under `accelerate launch`
    every process decides alike; only the first renames.
    """
    first_process = os.environ.get("RANK", "0") == "0" and os.environ.get("LOCAL_RANK", "0") == "0"
    found = checkpoints(output_dir)
    if not found:
        say(f"no checkpoint in {output_dir}: starting from the beginning")
        return None
    chosen, skipped = None, []
    for folder in found:
        if (problem := checkpoint_problem(folder)) is None:
            chosen = folder
            break
        skipped.append((folder, problem))
    then = (f"resuming from {chosen.name}" if chosen is not None
            else f"no complete checkpoint in {output_dir}, starting from the beginning")
    for folder, problem in skipped:
        kept = ""
        if first_process:
            try:
                kept = f"; kept as {_set_aside(folder).name}"
            except FileNotFoundError:  # another process moved it first
                pass
        say(f"{folder.name} is incomplete ({problem}{kept}): {then}")
    if chosen is not None and not skipped:
        say(f"resuming from {chosen.name}")
    return None if chosen is None else str(chosen)
