"""The zoo is a plausible base: low zero-shot, and a short LoRA run makes the jump.

The LoRA run is lab 03's recipe, as the model card (models/README.md) reports it
(`python -m slmlab.course.viability`); in the suite it is loaded from the course's cache, where
lab 03's solution stores it.
"""

import pytest

from slmlab.course.viability import measure

pytestmark = pytest.mark.slow  # the shared fixture trains a LoRA adapter (or loads it)


@pytest.fixture(scope="module")
def figures():
    return measure()


def test_zero_shot_is_low(figures):
    # the base models do not do the task by themselves (chance with four labels is 25 %)
    for name in ("tiny-phi3-teacher", "tiny-phi3-student"):
        assert figures[f"{name}_zero_shot_generated"] <= 0.35, figures


def test_short_lora_run_lifts_held_out_accuracy(figures):
    # its time is a benchmark figure: `python -m slmlab.course.viability`
    assert (figures["lora_steps"], figures["lora_rank"]) == (150, 4)
    assert figures["teacher_lora_test_generated"] >= 0.85, figures


def test_lora_generalises_to_emotion_words_never_seen_in_fine_tuning(figures):
    # chance is 25 %: the words' meaning can only come from pretraining
    assert figures["unseen_word_rows"] >= 40
    assert figures["teacher_lora_unseen_words_generated"] >= 0.60, figures
