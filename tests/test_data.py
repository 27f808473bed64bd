import json

import pytest
from datasets import Dataset

from slmlab.course import tone_data
from slmlab.data import (
    DataError,
    balanced_sample,
    load_tone,
    unseen_word_rows,
    validate_jsonl,
    words,
)
from slmlab.lexicon import TONES, all_cue_words
from slmlab.task import TEXT_TEMPLATE, chat_messages, examples, text_example


def test_splits_have_the_card_sizes_and_are_balanced(tone_rows):
    sizes = {"train": 240, "validation": 80, "test": 200, "pool": 400}
    for split, size in sizes.items():
        assert len(tone_rows[split]) == size, split
    for split in ("train", "validation", "test"):
        counts = {t: sum(r["tone"] == t for r in tone_rows[split]) for t in TONES}
        assert len(set(counts.values())) == 1, (split, counts)


def test_committed_files_are_what_the_generator_makes(tone_rows):
    made = tone_data.make_splits()
    for split in ("train", "validation", "test"):
        assert made[split] == tone_rows[split]
    assert [r["phrase"] for r in made["pool"]] == [r["phrase"] for r in tone_rows["pool"]]


def test_test_split_is_held_out(tone_rows):
    train_phrases = {r["phrase"] for r in tone_rows["train"] + tone_rows["validation"]}
    test_phrases = {r["phrase"] for r in tone_rows["test"]}
    pool_phrases = {r["phrase"] for r in tone_rows["pool"]}
    assert not train_phrases & test_phrases
    assert not test_phrases & pool_phrases
    # different sentence shapes: few shared trigrams (the data card reports the figures)
    assert tone_data.ngram_overlap(tone_rows["test"], tone_rows["train"], 3) < 0.15


def test_unseen_word_rows_really_are_unseen(tone_rows):
    unseen = unseen_word_rows(tone_rows["test"], tone_rows["train"])
    assert 40 <= len(unseen) < len(tone_rows["test"])
    train_words = set().union(*(words(r["phrase"]) for r in tone_rows["train"]))
    for row in unseen:
        cues = words(row["phrase"]) & set(all_cue_words())
        assert cues and not cues & train_words, row
        assert all(all_cue_words()[c] == row["tone"] for c in cues), row


def test_a_balanced_sample_keeps_the_tones_even_and_depends_on_its_seed(tone_rows):
    train = tone_rows["train"]
    sample = balanced_sample(train, 16, seed=3)
    assert len(sample) == 16 and all(row in train for row in sample)
    assert [sum(r["tone"] == t for r in sample) for t in TONES] == [4, 4, 4, 4]
    assert sample == balanced_sample(train, 16, seed=3) != balanced_sample(train, 16, seed=4)
    assert balanced_sample(train, len(train)) == train   # all of it: the rows as they are
    for bad in (10, 0, 2 * len(train), 16.0, True):
        with pytest.raises(ValueError, match="a multiple of 4"):
            balanced_sample(train, bad)


def test_load_tone_returns_a_dataset():
    test = load_tone("test")
    assert isinstance(test, Dataset) and set(test.column_names) == {"phrase", "tone"}


@pytest.mark.parametrize("line, message", [
    ("{not json", "not valid JSON"),
    ('["a list"]', "expected an object"),
    ('{"tone": "joy"}', "field 'phrase'"),
    ('{"phrase": "  ", "tone": "joy"}', "field 'phrase'"),
    ('{"phrase": "hi", "tone": "anger"}', "field 'tone'"),
])
def test_malformed_rows_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"phrase": "fine", "tone": "joy"}) + "\n" + line + "\n")
    with pytest.raises(DataError, match=rf"train.jsonl:2: .*{message}"):
        validate_jsonl(path)
    with pytest.raises(DataError, match="train.jsonl:2:"):
        load_tone("train", data_dir=tmp_path)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_tone("test", data_dir=tmp_path)
    (tmp_path / "test.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no rows"):
        load_tone("test", data_dir=tmp_path)


def test_templates():
    example = text_example("I feel happy today.", "joy")
    assert example["prompt"] + example["completion"] == TEXT_TEMPLATE.format(
        phrase="I feel happy today.", tone="joy")
    assert example["prompt"].endswith("### The tone is:\n")
    chat = chat_messages("I feel happy today.", "joy")
    assert [m["role"] for m in chat] == ["user", "assistant"] and chat[1]["content"] == "joy"
    row = {"phrase": "I feel happy today.", "tone": "joy"}
    assert examples([row]) == [example]
    assert examples([row], "chat") == [{"prompt": chat[:1], "completion": chat[1:]}]


def test_a_file_that_is_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"phrase": "fine", "tone": "joy"}\n{"phrase": "caf\xe9", "tone": "joy"}\n')
    with pytest.raises(DataError, match=r"train.jsonl:2: not UTF-8 text \(byte 0xe9\); save"):
        load_tone("train", data_dir=tmp_path)


def test_a_file_saved_by_a_windows_editor_loads(tmp_path):
    # UTF-8 with a byte-order mark and CRLF line ends, as Notepad or Excel save "UTF-8"
    rows = [{"phrase": "Café au lait again, what a morning!", "tone": "joy"},
            {"phrase": "The train left without me.", "tone": "sadness"}]
    text = "\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\r\n"
    (tmp_path / "train.jsonl").write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert validate_jsonl(tmp_path / "train.jsonl") == 2
    assert list(load_tone("train", data_dir=tmp_path)) == rows


@pytest.mark.parametrize("name", ["train.jsonl", "train.csv"])
def test_a_csv_file_is_named_as_such(tmp_path, name):
    path = tmp_path / name
    path.write_text("phrase,tone\nI won the race,joy\n")
    with pytest.raises(DataError, match=rf"{name}:1: looks like CSV \('phrase,tone'\); the "
                                        "course reads JSON Lines"):
        validate_jsonl(path)


def test_other_field_names_get_one_line_naming_the_expected_ones(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"text": "I won the race", "label": "joy"}) + "\n")
    with pytest.raises(DataError) as raised:
        load_tone("train", data_dir=tmp_path)
    assert str(raised.value) == (f"{path}:1: fields are 'text', 'label'; the course expects "
                                 "'phrase' and 'tone': rename them in the file")


def test_duplicate_rows_are_kept_and_counted(tmp_path, capsys):
    row = json.dumps({"phrase": "I won the race", "tone": "joy"})
    other = json.dumps({"phrase": "The dog ran off", "tone": "sadness"})
    (tmp_path / "train.jsonl").write_text("\n".join([row, other, row, row]) + "\n")
    assert len(load_tone("train", data_dir=tmp_path)) == 4
    printed = capsys.readouterr().out
    assert "has 2 duplicate rows of 4 (same phrase and tone); they are kept" in printed


def test_wild_split_is_balanced_hand_written_and_outside_the_generator(tone_rows):
    wild = list(load_tone("wild"))
    counts = {t: sum(r["tone"] == t for r in wild) for t in TONES}
    assert len(wild) >= 200 and len(set(counts.values())) == 1, counts
    phrases = [r["phrase"] for r in wild]
    assert len(set(phrases)) == len(phrases)
    generated = {r["phrase"] for split in tone_rows.values() for r in split}
    assert not generated & set(phrases)
    # not the generator's shapes: the generated splits share few trigrams with it
    assert tone_data.ngram_overlap(wild, tone_rows["train"], 3) < 0.05
    # everyday wording: many rows carry no cue word of the course's lexicon at all
    cue_free = [p for p in phrases if not words(p) & set(all_cue_words())]
    assert len(cue_free) >= len(phrases) / 2
