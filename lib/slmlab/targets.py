"""A lab's headline targets: each claim with its goal, the measured value, met or missed.

The targets are promises about a lab's default parameters (`parameters.check_parameters`
says whether this run keeps them). Every run reports each target as met or missed and
writes the list to `metrics.json` (the course report shows it); a run with the defaults
also fails on a missed one, so executing the solutions tests the promises.
"""

import operator

OPERATORS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


def goal(claim: str, measured: float, relation: str, bound: float) -> dict:
    """One headline target: `measured relation bound`, e.g. goal("accuracy", 0.93, ">=", 0.8)."""
    if relation not in OPERATORS:
        raise ValueError(f"relation must be one of {', '.join(OPERATORS)}, not {relation!r}")
    return {"claim": claim, "target": f"{relation} {bound:g}", "measured": measured,
            "met": bool(OPERATORS[relation](measured, bound))}


def check_targets(targets: list[dict], enforce: bool) -> list[dict]:
    """Print each target as met or missed; with `enforce`, fail on any missed one."""
    for t in targets:
        print(f"{'met   ' if t['met'] else 'MISSED'}  {t['claim']}: {t['measured']:.4g} "
              f"(target {t['target']})")
    missed = [t["claim"] for t in targets if not t["met"]]
    if enforce and missed:
        raise AssertionError(f"headline targets missed with the default parameters: "
                             f"{'; '.join(missed)}")
    return targets
