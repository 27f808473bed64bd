import time

import pytest

from slmlab.metrics import (
    TokenClock,
    accuracy,
    generation_speed,
    macro_f1,
    median_latencies_ms,
    median_latency_ms,
    median_rate,
    tokens_per_word,
    tone_reports,
    weight_memory_mb,
)
from slmlab.task import build_prompts, predict_tones


def test_accuracy_and_macro_f1_on_known_values():
    targets = ["joy", "joy", "fear", "fear"]
    predictions = ["joy", "fear", "fear", "fear"]
    assert accuracy(predictions, targets) == 0.75
    # joy: P 1, R 0.5 -> F1 2/3; fear: P 2/3, R 1 -> F1 0.8
    assert macro_f1(predictions, targets) == pytest.approx((2 / 3 + 0.8) / 2)
    assert macro_f1(targets, targets) == 1.0
    with pytest.raises(ValueError):
        accuracy([], [])


def test_prompts_in_both_templates(student):
    _, tokenizer = student
    text, chat = (build_prompts(tokenizer, ["I am sad."], t)[0] for t in ("text", "chat"))
    assert text == "### Text: I am sad.\n### The tone is:\n"
    assert chat.startswith("<|user|>\n") and chat.endswith("<|assistant|>\n")
    with pytest.raises(ValueError):
        build_prompts(tokenizer, ["x"], "xml")


def test_predictions_do_not_depend_on_batch_padding(student):
    model, tokenizer = student
    phrases = ["I feel happy today.", "A huge spider sat on my long sleeping bag tonight."]
    together = predict_tones(model, tokenizer, phrases, batch_size=2)
    alone = [predict_tones(model, tokenizer, [p])[0] for p in phrases]
    assert together == alone


def test_no_phrases_give_no_predictions_not_an_error(student):
    # lab 01 with few sampled phrases can filter out every one: its labelling then gets none
    from slmlab.distill import label_rows

    model, tokenizer = student
    assert predict_tones(model, tokenizer, []) == []
    assert label_rows(model, tokenizer, [], temperature=2.0) == []


def test_latencies_of_several_models_are_taken_in_turn(student, tone_rows, monkeypatch):
    # a slow moment of a shared CPU then slows every model alike: the ratios hold
    import slmlab.metrics as metrics

    now, calls = [0.0], []

    def call_taking(name, seconds):
        def call():
            calls.append(name)
            now[0] += seconds   # a fake clock: each call takes exactly this long
        return call

    monkeypatch.setattr(metrics.time, "perf_counter", lambda: now[0])
    timings = median_latencies_ms({"a": call_taking("a", 0.010), "b": call_taking("b", 0.030)},
                                  repeats=5, warmup=1)
    monkeypatch.undo()
    assert calls == ["a", "b"] * 6, "one warm-up round, then a and b alternate"
    assert timings == pytest.approx({"a": 10.0, "b": 30.0})
    model, tokenizer = student
    reports = tone_reports({"one": model, "same": model}, tokenizer, tone_rows["test"][:8],
                           latency_repeats=3)
    assert reports["one"]["accuracy"] == reports["same"]["accuracy"]
    assert {"latency_ms", "throughput_per_s", "parameters", "weight_mb"} <= set(reports["one"])


def test_latency_memory_and_speed(student):
    model, tokenizer = student
    assert 1 <= median_latency_ms(lambda: time.sleep(0.002), repeats=5, warmup=1) < 50
    params = sum(p.numel() for p in model.parameters())
    assert weight_memory_mb(model) >= params * 4 / 1e6
    prompt = "<|user|>\nhi<|end|>\n<|assistant|>\n"
    result = generation_speed(model, tokenizer, prompt, 5)
    assert result["tokens_per_second"] > 0 and result["decode_tokens_per_second"] > 0
    assert result["text"]
    # one token is all prompt processing: there is no decode rate to report
    assert generation_speed(model, tokenizer, prompt, 1)["decode_tokens_per_second"] is None


def test_token_clock_times_each_new_token_and_not_the_prompt(student):
    model, tokenizer = student
    clock = TokenClock()
    inputs = tokenizer("<|user|>\nhi<|end|>\n<|assistant|>\n", return_tensors="pt",
                       add_special_tokens=False)
    model.generate(**inputs, max_new_tokens=6, min_new_tokens=6, do_sample=False,
                   pad_token_id=tokenizer.pad_token_id, streamer=clock)
    assert len(clock.times) == 6 and clock.times == sorted(clock.times)


def test_tokens_per_word_counts_the_tokenizers_pieces_per_whitespace_word():
    def one_piece_per_letter(text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text if c != " "]}

    rows = [{"phrase": "ab cde"}, {"phrase": "f"}]
    assert tokens_per_word(one_piece_per_letter, rows) == 6 / 3


def test_median_rate_leaves_out_a_warm_up_call_and_takes_the_median():
    rates = iter([1.0, 50.0, 10.0, 30.0, 20.0, 40.0])   # the warm-up's 1.0 is not counted
    assert median_rate(lambda: next(rates)) == 30.0
    assert next(rates, None) is None, "one warm-up call and five timed ones"
