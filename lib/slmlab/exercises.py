"""Checks for learners' exercise code.

In `labs/`, an unfinished exercise raises NotImplementedError; `check` then says
"not done yet — using the reference" and returns the reference so the lab still runs
end to end. A finished but wrong answer fails loudly with what was expected. In
`solutions/` every check must pass, so executing the solutions tests the references.

Each check's outcome is also written to `{output_dir}/exercises.json` (`record_to`, called
by every lab's parameter check), which `make progress` reads.
"""

import contextlib
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy
import torch

from slmlab import saving

RECORD = {"path": None}  # this run's exercises.json, once the lab has called record_to
DONE, WRONG, NOT_STARTED = "done", "wrong", "not started"


def record_to(output_dir: str | os.PathLike) -> Path:
    """Start this run's `exercises.json` in `output_dir` (empty: nothing checked yet)."""
    path = Path(output_dir) / "exercises.json"
    saving.write_text(path, "[]\n")
    RECORD["path"] = path
    return path


def _record(name: str, status: str, message: str = "") -> None:
    path = RECORD["path"]
    if path is None or not path.exists():  # outside a lab run, or its folder is gone
        return
    recorded = saving.read_json(path, "this check records it again") or []
    outcomes = [o for o in recorded if o["exercise"] != name]
    outcomes.append({"exercise": name, "status": status, "message": message[:500]})
    saving.write_json(path, outcomes)  # never half-written: `make progress` reads it


def _same(got: Any, expected: Any) -> bool:
    if isinstance(expected, torch.Tensor):
        return isinstance(got, torch.Tensor) and got.shape == expected.shape and bool(
            torch.allclose(got.float(), expected.float(), atol=1e-5, rtol=1e-4))
    if isinstance(expected, float):
        return isinstance(got, int | float) and abs(got - expected) <= 1e-6 * max(1, abs(expected))
    return got == expected


def check(name: str, solution: Callable, reference: Callable, cases: Sequence[tuple],
          hint: str = "") -> Callable:
    """Run `solution` on each case's arguments and compare with `reference`.

    Returns the learner's function when it is right, the reference when it is not done.
    A wrong answer fails with the case, both values and `hint` (the usual mistake).

    The random generators (torch, random, numpy) are restored afterwards: a reference that
    draws numbers (e.g. builds a layer with random init) runs once per case when the
    exercise is done and once when it is not, and the lab's later training must not
    depend on which.
    """
    with _random_state_kept():
        return _check(name, solution, reference, cases, hint)


@contextlib.contextmanager
def _random_state_kept():
    states = torch.random.get_rng_state(), random.getstate(), numpy.random.get_state()
    try:
        yield
    finally:
        torch.random.set_rng_state(states[0])
        random.setstate(states[1])
        numpy.random.set_state(states[2])


def _check(name: str, solution: Callable, reference: Callable, cases: Sequence[tuple],
           hint: str) -> Callable:
    for args in cases:
        expected = reference(*args)
        try:
            got = solution(*args)
        except NotImplementedError:
            print(f"⏳ {name}: not done yet — using the reference so the lab can go on")
            _record(name, NOT_STARTED)
            return reference
        if not _same(got, expected):
            message = (f"✗ {name}{_short(args)} returned {got!r}, expected {expected!r}"
                       + (f" — {hint}" if hint else ""))
            _record(name, WRONG, message)
            raise AssertionError(message)
    print(f"✓ {name}: all {len(cases)} checks pass")
    _record(name, DONE)
    return solution


def _short(args: tuple) -> str:
    text = ", ".join(repr(a) if len(repr(a)) < 40 else type(a).__name__ for a in args)
    return f"({text})"


def todo(hint: str) -> None:
    """What an exercise scaffold in labs/ calls: marks it unfinished."""
    raise NotImplementedError(f"exercise not done yet: {hint}")
