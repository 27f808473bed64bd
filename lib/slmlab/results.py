"""The course's measured spreads over seeds, read from `docs/results.json`.

One seed on one CPU is one draw: a lab that compares two methods quotes the spread of that
comparison over several seeds, with the conditions it was measured under (seeds, CPU,
threads, command, date). Those figures live in one data file, written by `make variance`
runs merged with `make results`; this module reads it and renders one line per figure, so
the README, the results page and the labs quote the same numbers.

Values in the file are fractions (0.955 is 95.5 %); a comparison's `a_minus_b` is in the
same unit, shown as points (100×).
"""

import json
import re
from pathlib import Path

from slmlab import REPO_ROOT

RESULTS_FILE = REPO_ROOT / "docs" / "results.json"
MINUS = "\u2212"   # typographic minus, as the course's tables print it


def load(path: Path | None = None) -> dict:
    """The whole results file; one clear line if it is missing or not valid JSON."""
    path = Path(path or RESULTS_FILE)
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no results file (regenerate it with `make results`)") \
            from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})") from None
    if not isinstance(results, dict) or not isinstance(results.get("comparisons"), list) \
            or not isinstance(results.get("figures"), dict):
        raise ValueError(f"{path}: expected an object with 'figures' and 'comparisons'")
    return results


def comparison(lab: str, a: str, b: str, results: dict | None = None) -> dict:
    """The paired per-seed difference a − b measured for `lab`, with its conditions."""
    results = results or load()
    for entry in results["comparisons"]:
        if (entry["lab"], entry["a"], entry["b"]) == (lab, a, b):
            return entry
    known = [f"{c['a']} − {c['b']}" for c in results["comparisons"] if c["lab"] == lab]
    raise KeyError(f"no comparison {a!r} − {b!r} for {lab} in the results file; "
                   f"it has: {'; '.join(known) or 'none for this lab'}")


def figure(lab: str, path: str, results: dict | None = None) -> dict:
    """The spread (mean, std, min, max, n) of one metrics.json figure, with its conditions."""
    results = results or load()
    figures = results["figures"].get(lab, {})
    if path not in figures:
        raise KeyError(f"no figure {path!r} for {lab} in the results file; "
                       f"it has: {', '.join(figures) or 'none for this lab'}")
    return figures[path]


def series(lab: str, pattern: str, results: dict | None = None) -> dict[int, dict]:
    """One figure measured at several sizes or steps: {size: spread}, ascending, from the
    figures whose path is `pattern` with a whole number for "{size}", e.g.
    "gold_curve/{size}/gold only/accuracy" or "learning_curves/Olive CLI/{size}"."""
    results = results or load()
    matcher = re.compile(re.escape(pattern).replace(re.escape("{size}"), r"(\d+)"))
    points = {int(match.group(1)): spread
              for path, spread in results["figures"].get(lab, {}).items()
              if (match := matcher.fullmatch(path))}
    if not points:
        raise KeyError(f"no figures {pattern} for {lab} in the results file; measure them "
                       "with `make variance`, then `make results`")
    return dict(sorted(points.items()))


def draw_spread(axis, spreads: dict[int, dict], color: str, label: str | None = None,
                mean_line: bool = True) -> None:
    """Draw a `series` on a matplotlib `axis`: a band of mean ± std over the seeds, and the
    mean as a line (`mean_line`, labelled `label`)."""
    sizes = list(spreads)
    means = [spreads[n]["mean"] for n in sizes]
    stds = [spreads[n]["std"] or 0.0 for n in sizes]
    if mean_line:
        axis.plot(sizes, means, marker="o", color=color, label=label)
    axis.fill_between(sizes, [m - s for m, s in zip(means, stds, strict=True)],
                      [m + s for m, s in zip(means, stds, strict=True)], color=color,
                      alpha=0.15)


def outside_spread(value: float, spread: dict, floor: float = 0.05) -> float:
    """How far `value` lies outside a stored spread's range (min … max over the seeds),
    widened by 2 std and at least `floor` for other CPUs' draws; 0.0 inside. A lab checks its
    live point of a stored curve with it."""
    margin = max(2 * (spread.get("std") or 0.0), floor)
    low = spread["min"] if spread.get("min") is not None else spread["mean"]
    high = spread["max"] if spread.get("max") is not None else spread["mean"]
    return max(low - margin - value, value - high - margin, 0.0)


def _seeds_text(seeds: list[int]) -> str:
    """"0–4" for a run of seeds, "0, 2, 5" otherwise."""
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(map(str, seeds))


def _conditions_text(conditions: dict) -> str:
    """"seeds 0–4, 2-core AVX512 CPU, 1 thread per lab": what a reader needs to compare."""
    avx = "AVX512" if conditions.get("avx512") else "non-AVX512"
    threads = conditions.get("threads_per_lab")
    parts = [f"seeds {_seeds_text(conditions['seeds'])}"] if conditions.get("seeds") else []
    parts.append(f"{conditions.get('cores', '?')}-core {avx} CPU")
    if threads is not None:
        parts.append(f"{threads} thread{'s' if threads != 1 else ''} per lab")
    return ", ".join(parts)


def _number(value: float, scale: float = 1.0, sign: bool = False,
            decimals: int | None = 1) -> str:
    """A figure with a typographic minus; `decimals` None keeps 4 significant digits."""
    text = f"{value * scale:{'+' if sign else ''}.{decimals}f}" if decimals is not None \
        else f"{value * scale:{'+' if sign else ''}.4g}"
    if text.lstrip("+-").strip("0.") == "":   # -0.0 reads as a sign that is not there
        text = text.replace("-", "+" if sign else "")
    return text.replace("-", MINUS)


def _spread_text(spread: dict, scale: float, unit: str, sign: bool,
                decimals: int | None) -> str:
    """"95.5 ± 1.7 % (93.0 … 97.0)" from a spread; the range only when it was recorded."""
    std = spread.get("std")
    text = _number(spread["mean"], scale, sign, decimals)
    if std is not None:
        text += f" ± {_number(std, scale, False, decimals)}"
    text += unit
    if spread.get("min") is not None and spread.get("max") is not None:
        text += (f" ({_number(spread['min'], scale, sign, decimals)} … "
                 f"{_number(spread['max'], scale, sign, decimals)})")
    return text


def describe_comparison(lab: str, a: str, b: str, results: dict | None = None) -> str:
    """e.g. "+1.4 ± 1.3 points (−0.5 … +3.0) over seeds 0–4, 2-core AVX512 CPU, 1 thread
    per lab"."""
    entry = comparison(lab, a, b, results)
    text = _spread_text(entry["a_minus_b"], 100, " points", sign=True, decimals=1)
    return f"{text} over {_conditions_text(entry['conditions'])}"


def describe_figure(lab: str, path: str, percent: bool = True,
                    results: dict | None = None) -> str:
    """e.g. "95.5 ± 1.7 % (93.0 … 97.0), seeds 0–4, 2-core AVX512 CPU, 1 thread per lab";
    percent=False for figures that are not fractions (seconds, perplexity, loss)."""
    entry = figure(lab, path, results)
    text = (_spread_text(entry, 100, " %", sign=False, decimals=1) if percent
            else _spread_text(entry, 1, "", sign=False, decimals=None))
    return f"{text}, {_conditions_text(entry['conditions'])}"


def real_width(results: dict | None = None) -> dict:
    """Lab 05's export measured at Phi-3-mini's full width (`make bench-width`)."""
    results = results or load()
    if "real_width" not in results:
        raise KeyError("no full-width export in the results file; measure it with "
                       "`make bench-width`, then `make results`")
    return results["real_width"]


def describe_real_width(results: dict | None = None) -> str:
    """The INT4/fp32 size at Phi-3-mini's width, with the arithmetic of its extrapolation
    from the layers built to 32, and whether the fp32 export kept PyTorch's greedy tokens."""
    entry = real_width(results)
    built, lines = entry["layers"], []
    for precision in ("fp32", "int4"):
        p = {k: v / 1e6 for k, v in entry["parts"][precision].items()}
        total = entry["bytes_at_32_layers"][precision] / 1e9
        lines.append(f"{precision}: embedding {p['embedding']:.1f} MB + lm_head "
                     f"{p['lm_head']:.1f} MB + other {p['other']:.1f} MB + 32 x "
                     f"{p['decoder layers'] / built:.1f} MB per decoder layer = {total:.2f} GB")
    ratio = entry["int4_over_fp32_at_32_layers"]
    lines.append(f"INT4 / fp32 = {ratio:.3f} ({1 / ratio:.1f}x smaller; {2 * ratio:.2f} of "
                 f"fp16); measured with {built} layer(s): {entry['int4_over_fp32']:.3f}")
    lines.append(f"fp32 export's greedy tokens equal PyTorch's: {entry['fp32_parity']} "
                 f"(random weights, hidden {entry['hidden_size']}, vocabulary "
                 f"{entry['vocab_size']:,}; {_conditions_text(entry['conditions'])})")
    return "\n".join(lines)
