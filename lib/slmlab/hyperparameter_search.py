"""Random hyper-parameter search over LoRA fine-tuning: the axes the source material tunes.

Each trial is lab 03's recipe (`sft.train_adapter`) with a sampled config, after the
recipe itself as the baseline; the search is seeded, so the same `search_seed` draws the
same configs on every machine.
"""

import math
import random

from slmlab import results

# Lab 03's recipe as it is (`sft.train_adapter`'s defaults): the config a search has to beat,
# lab 07's trial 0. Labs 01 and 03-06 train the same adapter, so the course's cache has it.
BASELINE = {"learning_rate": 3e-3, "rank": 4, "batch_size": 16}
# learning rate (log scale, from too low to learn in lab 03's 150 steps to too high to stay
# stable), LoRA rank, batch size
SEARCH_SPACE = {"learning_rate": (1e-4, 3e-2), "rank": [2, 4, 8, 16],
                "batch_size": [8, 16]}


def sample_config(rng: random.Random, space: dict = SEARCH_SPACE) -> dict:
    """One random config: learning rate log-uniform in its range, rank and batch uniform."""
    low, high = space["learning_rate"]
    learning_rate = math.exp(rng.uniform(math.log(low), math.log(high)))
    return {"learning_rate": float(f"{learning_rate:.2e}"), "rank": rng.choice(space["rank"]),
            "batch_size": rng.choice(space["batch_size"])}


def nearest_trials(trials: list[dict], learning_rate: float, rank: int | None = None,
                   batch_size: int | None = None, k: int = 3) -> list[dict]:
    """The `k` stored trials closest to `learning_rate` on a log scale, among those with
    `rank` and `batch_size` (None: any): a sweep's results read back, nothing retrained."""
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be positive, not {learning_rate}")
    matching = [t for t in trials if rank in (None, t["rank"])
                and batch_size in (None, t["batch_size"])]
    return sorted(matching, key=lambda t: abs(math.log(t["learning_rate"] / learning_rate)))[:k]


def stored_trials(lab: str = "07_tuning_and_evaluation") -> list[dict]:
    """The course's own sweep from docs/results.json (`make variance`): per trial its config
    and its validation (mean, std) and test accuracy (mean) over the seeds."""
    keys = ("learning_rate", "rank", "batch_size", "validation_accuracy", "accuracy")
    by_key = {key: results.series(lab, f"sweep/{{size}}/{key}") for key in keys}
    # a trial's config is the same on every seed: its min is the value, unrounded (the mean
    # is rounded to 4 decimals, which would merge 3.64e-4 and 3.89e-4)
    return [{"trial": trial, "learning_rate": by_key["learning_rate"][trial]["min"],
             "rank": int(by_key["rank"][trial]["min"]),
             "batch_size": int(by_key["batch_size"][trial]["min"]),
             "validation_accuracy": spread["mean"], "validation_std": spread["std"],
             "accuracy": by_key["accuracy"][trial]["mean"]}
            for trial, spread in by_key["validation_accuracy"].items()]
