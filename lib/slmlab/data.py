"""Tone data: the splits on disk, loaded through `datasets` after a row-by-row check.

Rows are `{"phrase": ..., "tone": ...}`, the format of Olive's tone example; a malformed
row fails with `file:line: what is wrong`. How a row becomes a prompt is `task.py`'s.
"""

import json
import random
import re
from pathlib import Path

from datasets import Dataset, load_dataset

from slmlab import DATA_DIR
from slmlab.lexicon import TONES, all_cue_words

TONE_DIR = DATA_DIR / "tone"


class DataError(ValueError):
    """A malformed data file; the message starts with `file:line:`."""


def _text_lines(path: Path) -> list[str]:
    data = path.read_bytes()
    try:
        # utf-8-sig: Windows editors start a "UTF-8" file with a byte-order mark, which
        # datasets reads past; plain utf-8 kept it, and line 1 looked like CSV
        return data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte 0x{data[error.start]:02x}); save "
                        "the file as UTF-8") from None


def validate_jsonl(path: str | Path, labelled: bool = True) -> int:
    """Check every row of a JSONL file; return the row count or raise DataError."""
    return check_rows(path, labelled)[0]


def check_rows(path: str | Path, labelled: bool = True) -> tuple[int, int]:
    """(rows, rows that repeat an earlier one exactly) of a JSONL file, or DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    lines = _text_lines(path)
    first = next((line for line in lines if line.strip()), "")
    if path.suffix.lower() in (".csv", ".tsv") or (first and first[0] not in "{[\"" and
                                                   ("," in first or "\t" in first)):
        raise DataError(f"{path}:1: looks like CSV ({first[:40]!r}); the course reads JSON "
                        'Lines, one {"phrase": ..., "tone": ...} object per line')
    count, seen, duplicates = 0, set(), 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}:"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{where} not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where} expected an object, got {type(row).__name__}")
        expected = ["phrase", "tone"] if labelled else ["phrase"]
        if not set(expected) & set(row):  # other field names, e.g. {"text": .., "label": ..}
            raise DataError(f"{where} fields are {', '.join(map(repr, row))}; the course expects "
                            f"{' and '.join(map(repr, expected))}: rename them in the file")
        phrase = row.get("phrase")
        if not isinstance(phrase, str) or not phrase.strip():
            raise DataError(f"{where} field 'phrase' must be a non-empty string")
        if labelled and row.get("tone") not in TONES:
            raise DataError(f"{where} field 'tone' is {row.get('tone')!r}; "
                            f"expected one of {', '.join(TONES)}")
        key = (phrase.strip(), row.get("tone"))
        duplicates += key in seen
        seen.add(key)
        count += 1
    if count == 0:
        raise DataError(f"{path}: no rows")
    return count, duplicates


def load_tone(split: str, data_dir: str | Path = TONE_DIR) -> Dataset:
    """One split ("train", "validation", "test" or the unlabeled "pool") as a Dataset."""
    path = Path(data_dir) / f"{split}.jsonl"
    count, duplicates = check_rows(path, labelled=split != "pool")
    if duplicates:  # kept: a learner's data may repeat rows on purpose (oversampling)
        print(f"note: {path} has {duplicates} duplicate rows of {count} "
              "(same phrase and tone); they are kept, and weigh double in training")
    return load_dataset("json", data_files=str(path), split="train")


def words(phrase: str) -> set[str]:
    return set(re.findall(r"[a-z]+", phrase.lower()))


def unseen_word_rows(rows, train_rows) -> list[dict]:
    """Rows with emotion cue words, none of which occurs in `train_rows`.

    This is the honest generalisation split: fine-tuning never saw these words, so
    the label must come from what the base model learned in pretraining.
    """
    cue_words = set(all_cue_words())
    train_words = set().union(*(words(r["phrase"]) for r in train_rows))
    result = []
    for row in rows:
        cues = words(row["phrase"]) & cue_words
        if cues and not cues & train_words:
            result.append(dict(row))
    return result


def balanced_sample(rows, n: int, seed: int = 0, labels=TONES) -> list[dict]:
    """`n` rows, the same number per tone, drawn with `seed`: a smaller gold set that keeps
    the label balance, so a curve over its size measures size, not a skewed sample."""
    rows = list(rows)
    by_label = {label: [r for r in rows if r["tone"] == label] for label in labels}
    most = len(labels) * min(len(group) for group in by_label.values())
    if not isinstance(n, int) or isinstance(n, bool) or n < len(labels) \
            or n % len(labels) or n > most:
        raise ValueError(f"a balanced sample of {n!r} rows: use a multiple of {len(labels)} "
                         f"(one row per tone each) from {len(labels)} to {most}")
    if n == len(rows):
        return rows
    rng = random.Random(seed)
    return [row for label in labels for row in rng.sample(by_label[label], n // len(labels))]
