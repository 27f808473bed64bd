"""Tone data: validated loading through `datasets`, and the course's prompt templates.

The prompt template lives here and only here. Rows are `{"phrase": ..., "tone": ...}`,
the format of Olive's tone example; a malformed row fails with `file:line: what is wrong`.
"""

import json
import re
from pathlib import Path

from datasets import Dataset, load_dataset

from slmlab import DATA_DIR
from slmlab.lexicon import TONES, all_cue_words

TONE_DIR = DATA_DIR / "tone"
SPLITS = ("train", "validation", "test")
TEXT_TEMPLATE = "### Text: {phrase}\n### The tone is:\n{tone}"
CHAT_QUESTION = "What is the tone of this text? Answer with one word.\n{phrase}"


class DataError(ValueError):
    """A malformed data file; the message starts with `file:line:`."""


def validate_jsonl(path: str | Path, labelled: bool = True) -> int:
    """Check every row of a JSONL file; return the row count or raise DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    count = 0
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}:"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{where} not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where} expected an object, got {type(row).__name__}")
        phrase = row.get("phrase")
        if not isinstance(phrase, str) or not phrase.strip():
            raise DataError(f"{where} field 'phrase' must be a non-empty string")
        if labelled and row.get("tone") not in TONES:
            raise DataError(f"{where} field 'tone' is {row.get('tone')!r}; "
                            f"expected one of {', '.join(TONES)}")
        count += 1
    if count == 0:
        raise DataError(f"{path}: no rows")
    return count


def load_tone(split: str, data_dir: str | Path = TONE_DIR) -> Dataset:
    """One split ("train", "validation", "test" or the unlabeled "pool") as a Dataset."""
    path = Path(data_dir) / f"{split}.jsonl"
    validate_jsonl(path, labelled=split != "pool")
    return load_dataset("json", data_files=str(path), split="train")


def text_prompt(phrase: str) -> str:
    """The text-template prompt, ending where the model must write the tone."""
    return TEXT_TEMPLATE.format(phrase=phrase, tone="")


def text_example(phrase: str, tone: str) -> dict:
    """Prompt/completion pair in the text template (the completion is the label)."""
    return {"prompt": text_prompt(phrase), "completion": tone}


def chat_messages(phrase: str, tone: str | None = None) -> list[dict]:
    """The chat-format variant: a user question, and the answer when `tone` is given."""
    messages = [{"role": "user", "content": CHAT_QUESTION.format(phrase=phrase)}]
    if tone is not None:
        messages.append({"role": "assistant", "content": tone})
    return messages


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
