"""Builds the course's tone dataset (`data/tone/*.jsonl`), seeded and reproducible.

Run `python -m slmlab.course.tone_data` to rewrite the files and print the figures of the data
card. Train and validation share one family of sentence shapes and the `train` cue
words; the test split uses other sentence shapes, other filler words and, for half of
its rows, only held-out cue words or situations, so it measures generalisation rather
than recall of paraphrases. The unlabeled pool (for distillation) uses a third family.
"""

import json
import random
from collections import Counter
from pathlib import Path

from slmlab import DATA_DIR
from slmlab.lexicon import CUE_WORDS, SITUATIONS, TONES

TRAIN_SHAPES = [
    "I feel {cue} today.",
    "We were so {cue} after {situation}.",
    "She is {cue} about {situation}.",
    "{Situation} left me {cue}.",
    "Honestly, I am {cue}.",
    "Today was all about {situation}.",
    "They looked {cue} at the end of the day.",
    "My brother was {cue} because of {situation}.",
]
TEST_SHAPES = [
    "Why does {situation} make me feel this {cue}?",
    "After {situation} he sat there, completely {cue}.",
    "My friends say I look {cue} lately.",
    "Nobody expected how {cue} the whole room would become.",
    "Can you believe it, {situation}!",
    "It was {situation}, nothing more to say.",
    "Grandpa stayed {cue} for hours.",
    "What a week: {situation}, and I am still {cue}.",
]
POOL_SHAPES = [
    "Yesterday I was {cue}.",
    "The kids were {cue} when they heard about {situation}.",
    "You could tell she was {cue}.",
    "Think of {situation}.",
    "Everyone at work was {cue} this morning.",
]


def _fill(rng: random.Random, shape: str, tone: str, half: str) -> str:
    situation = rng.choice(SITUATIONS[tone][half])
    return shape.format(cue=rng.choice(CUE_WORDS[tone][half]), situation=situation,
                        Situation=situation.capitalize())


def _unique_rows(rng: random.Random, shapes: list[str], halves: list[str], per_tone: int,
                 taken: set[str]) -> list[dict]:
    """`per_tone` rows per tone with phrases not in `taken` (which is updated)."""
    rows = []
    for tone in TONES:
        count = 0
        for _ in range(per_tone * 200):  # bounded: stop trying if the shapes run dry
            if count == per_tone:
                break
            phrase = _fill(rng, rng.choice(shapes), tone, rng.choice(halves))
            if phrase not in taken:
                taken.add(phrase)
                rows.append({"phrase": phrase, "tone": tone})
                count += 1
        if count < per_tone:
            raise RuntimeError(f"only {count} unique {tone} phrases; add shapes or words")
    rng.shuffle(rows)
    return rows


def make_splits(seed: int = 0) -> dict[str, list[dict]]:
    """The four splits: train, validation, test (labelled) and pool (unlabeled)."""
    rng = random.Random(seed)
    taken: set[str] = set()
    train_and_val = _unique_rows(rng, TRAIN_SHAPES, ["train"], 80, taken)
    test = _unique_rows(rng, TEST_SHAPES, ["train", "heldout"], 50, taken)
    pool = _unique_rows(rng, POOL_SHAPES, ["train", "heldout"], 100, taken)
    # stratified: 60 train and 20 validation rows per tone
    seen: Counter = Counter()
    train, validation = [], []
    for row in train_and_val:
        seen[row["tone"]] += 1
        (train if seen[row["tone"]] <= 60 else validation).append(row)
    return {
        "train": train,
        "validation": validation,
        "test": test,
        "pool": [{"phrase": row["phrase"]} for row in pool],
    }


def ngram_overlap(rows: list[dict], reference: list[dict], n: int) -> float:
    """Share of the word n-grams of `rows` that also occur in `reference`."""
    def grams(row_list: list[dict]) -> Counter:
        found: Counter = Counter()
        for row in row_list:
            words = row["phrase"].lower().rstrip(".!?").replace(",", "").split()
            found.update(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
        return found

    mine, theirs = grams(rows), grams(reference)
    total = sum(mine.values())
    return sum(c for g, c in mine.items() if g in theirs) / total if total else 0.0


def write_splits(out_dir: Path = DATA_DIR / "tone", seed: int = 0) -> dict[str, list[dict]]:
    """Write every split as JSONL into `out_dir` and return them."""
    splits = make_splits(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        with open(out_dir / f"{name}.jsonl", "w") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)
    return splits


if __name__ == "__main__":
    written = write_splits()
    for name, rows in written.items():
        print(name, len(rows), dict(Counter(row.get("tone") for row in rows)))
    for n in (1, 2, 3):
        print(f"test {n}-gram overlap with train: "
              f"{ngram_overlap(written['test'], written['train'], n):.1%}")
