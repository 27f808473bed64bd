"""Random hyper-parameter search over LoRA fine-tuning: the axes the source material tunes.

Each trial is lab 03's recipe (`sft.train_adapter`) with a sampled config, after the
recipe itself as the baseline; the search is seeded, so the same `search_seed` draws the
same configs on every machine.
"""

import math
import random

# Lab 03's recipe as it is (`sft.train_adapter`'s defaults): the config a search has to beat,
# lab 07's trial 0. Labs 01 and 03-06 train the same adapter, so the course's cache has it.
BASELINE = {"learning_rate": 3e-3, "rank": 4, "batch_size": 16}
# learning rate (log scale), LoRA rank, batch size
SEARCH_SPACE = {"learning_rate": (1e-3, 1e-2), "rank": [2, 4, 8, 16],
                "batch_size": [8, 16]}


def sample_config(rng: random.Random, space: dict = SEARCH_SPACE) -> dict:
    """One random config: learning rate log-uniform in its range, rank and batch uniform."""
    low, high = space["learning_rate"]
    learning_rate = math.exp(rng.uniform(math.log(low), math.log(high)))
    return {"learning_rate": float(f"{learning_rate:.2e}"), "rank": rng.choice(space["rank"]),
            "batch_size": rng.choice(space["batch_size"])}
