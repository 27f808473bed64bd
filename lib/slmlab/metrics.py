"""Measures the labs report, one unit each (MB = 1e6 bytes): tone accuracy, macro-F1,
confusion matrix, perplexity, BLEU/ROUGE, latency, speed, parameter counts, sizes on disk,
weight and process memory.

Measures only: what the task asks and how a tone is predicted live in `task.py`.
"""

import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil
import torch
from torch import nn

from slmlab.lexicon import TONES
from slmlab.task import NOT_A_LABEL, predict_tones


def accuracy(predictions: Sequence[str], targets: Sequence[str]) -> float:
    if len(predictions) != len(targets) or not targets:
        raise ValueError("predictions and targets must be non-empty and of equal length")
    return sum(p == t for p, t in zip(predictions, targets, strict=True)) / len(targets)


def macro_f1(predictions: Sequence[str], targets: Sequence[str]) -> float:
    """Unweighted mean of per-class F1 over the classes present in `targets`."""
    scores = []
    for label in sorted(set(targets)):
        tp = sum(p == t == label for p, t in zip(predictions, targets, strict=True))
        fp = sum(p == label != t for p, t in zip(predictions, targets, strict=True))
        fn = sum(t == label != p for p, t in zip(predictions, targets, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def confusion_matrix(predictions: Sequence[str], targets: Sequence[str],
                     labels: Sequence[str] = TONES) -> list[list[int]]:
    """Counts: one row per true label, one column per predicted label plus "not a label"."""
    columns = [*labels, NOT_A_LABEL]
    matrix = [[0] * len(columns) for _ in labels]
    for predicted, target in zip(predictions, targets, strict=True):
        column = columns.index(predicted) if predicted in columns else len(labels)
        matrix[list(labels).index(target)][column] += 1
    return matrix


def class_weights(rows: Sequence[dict], labels: Sequence[str] = TONES) -> dict[str, float]:
    """Inverse-frequency weights, scaled so that a balanced set gets 1.0 for every class."""
    counts = {label: sum(r["tone"] == label for r in rows) for label in labels}
    return {label: len(rows) / (len(labels) * count) for label, count in counts.items()}


def tone_accuracy(model, tokenizer, rows: Sequence[dict], template: str = "text",
                  restrict_to_labels: bool = True) -> float:
    """Accuracy of `predict_tones` on labelled rows."""
    predictions = predict_tones(model, tokenizer, [r["phrase"] for r in rows], template,
                                restrict_to_labels=restrict_to_labels)
    return accuracy(predictions, [r["tone"] for r in rows])


def tokens_per_word(tokenizer, rows: Sequence[dict]) -> float:
    """Tokens per whitespace word of the rows' phrases: how finely the tokenizer cuts them
    (words its training text never used fall apart into byte pieces)."""
    tokens = sum(len(tokenizer(r["phrase"], add_special_tokens=False)["input_ids"])
                 for r in rows)
    return tokens / sum(len(r["phrase"].split()) for r in rows)


@torch.no_grad()
def perplexity(model, token_ids: torch.Tensor, seq_len: int = 64) -> float:
    """Perplexity over consecutive windows of a 1-D tensor of token IDs."""
    model.eval()
    n = (len(token_ids) - 1) // seq_len * seq_len
    windows = token_ids[:n].view(-1, seq_len)
    losses = [model(input_ids=b, labels=b).loss.item() for b in windows.split(64)]
    return math.exp(sum(losses) / len(losses))


def median_latency_ms(fn: Callable[[], object], repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of `fn()` in milliseconds, after `warmup` untimed calls."""
    return median_latencies_ms({"fn": fn}, repeats, warmup)["fn"]


def median_latencies_ms(fns: dict[str, Callable[[], object]], repeats: int = 20,
                        warmup: int = 3) -> dict[str, float]:
    """Median wall time in milliseconds of each function, the calls taken in turn (a, b, a,
    b, ...) after `warmup` untimed rounds: a slow moment of a shared CPU then slows every
    function alike instead of the one measured at that moment, so their ratios hold."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def median_rate(measure: Callable[[], float], runs: int = 5) -> float:
    """Median of `measure()` (a rate, such as decode tokens/s) over `runs` calls after one
    untimed warm-up call: one run on a shared CPU is noisy, and a first run pays one-off
    setup (memory arenas, caches)."""
    measure()
    return statistics.median(measure() for _ in range(runs))


def weight_memory_mb(model: nn.Module) -> float:
    """Megabytes held by parameters and buffers."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors) / 1e6


def process_memory_mb() -> float:
    """Resident memory of this process now, in megabytes."""
    return psutil.Process().memory_info().rss / 1e6


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def trainable_summary(model: nn.Module) -> dict:
    """Trainable and total parameter counts, and the trainable percentage."""
    total, trainable = count_parameters(model), count_parameters(model, trainable_only=True)
    return {"trainable": trainable, "total": total, "percent": 100 * trainable / total}


def size_on_disk_mb(path: str | os.PathLike) -> float:
    """Megabytes of all files under `path` (a file or a directory)."""
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def saved_size_mb(model) -> float:
    """What you would ship: `save_pretrained`'s files (a PEFT adapter, or a whole model)."""
    with tempfile.TemporaryDirectory() as directory:
        model.save_pretrained(directory)
        return size_on_disk_mb(directory)


def linear_weight_bytes(model: nn.Module) -> dict:
    """Bytes held by the weights of the decoder's linear layers, as stored (any format).

    For a 4-bit layer this counts the packed weights plus its quantization state (block
    absmax values, and with double quantization their own scales).
    """
    total, count = 0, 0
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or name.endswith("lm_head"):
            continue
        weight = module.weight
        total += weight.numel() * weight.element_size()
        state = getattr(weight, "quant_state", None)
        if state is not None:
            total += state.absmax.numel() * state.absmax.element_size()
            if state.nested:
                total += state.state2.absmax.numel() * state.state2.absmax.element_size()
                total += state.state2.code.numel() * state.state2.code.element_size()
        count += 1
    return {"bytes": total, "layers": count}


class TokenClock:
    """A `generate` streamer that notes when each new token comes out (its first `put` is
    the prompt, so it is skipped)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._prompt_seen = False

    def put(self, value) -> None:
        if self._prompt_seen:
            self.times.append(time.perf_counter())
        self._prompt_seen = True

    def end(self) -> None:
        pass


@torch.no_grad()
def generation_speed(model, tokenizer, prompt: str, new_tokens: int = 32) -> dict:
    """Greedy generation of exactly `new_tokens` tokens: text, tokens/s of the whole call,
    and decode tokens/s — the tokens after the first over the time after it (the first
    token processes the prompt), as `export.og_generate` times ORT-GenAI; None below 2."""
    model.eval()
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
    clock = TokenClock()
    start = time.perf_counter()
    output = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                            do_sample=False, pad_token_id=tokenizer.pad_token_id,
                            streamer=clock)
    seconds = time.perf_counter() - start
    new = output[0, inputs["input_ids"].shape[1]:]
    decode_seconds = clock.times[-1] - clock.times[0] if len(clock.times) > 1 else 0.0
    return {"text": tokenizer.decode(new, skip_special_tokens=False),
            "tokens_per_second": len(new) / seconds,
            "decode_tokens_per_second": (len(clock.times) - 1) / decode_seconds
            if decode_seconds else None}


def tone_reports(models: dict[str, nn.Module], tokenizer, rows: Sequence[dict],
                 template: str = "text", latency_repeats: int = 20,
                 wild_rows: Sequence[dict] = ()) -> dict[str, dict]:
    """For each named model: accuracy, macro-F1, batch-1 latency, batch-32 throughput, size;
    with `wild_rows` (the hand-written split) their accuracy too. The models' timings are
    taken in turn (`median_latencies_ms`), so the ratios between them are fair."""
    phrases, targets = [r["phrase"] for r in rows], [r["tone"] for r in rows]

    def timed(n: int) -> dict[str, Callable[[], object]]:
        return {name: (lambda m=model: predict_tones(m, tokenizer, phrases[:n], template))
                for name, model in models.items()}

    latency = median_latencies_ms(timed(1), repeats=latency_repeats)
    batch_ms = median_latencies_ms(timed(32), repeats=max(3, latency_repeats // 4))
    reports = {}
    for name, model in models.items():
        predictions = predict_tones(model, tokenizer, phrases, template, restrict_to_labels=False)
        reports[name] = {
            "accuracy": accuracy(predictions, targets),
            "macro_f1": macro_f1(predictions, targets),
            "latency_ms": latency[name],
            "throughput_per_s": min(32, len(phrases)) / (batch_ms[name] / 1000),
            "parameters": count_parameters(model),
            "weight_mb": weight_memory_mb(model),
            **({"wild_accuracy": tone_accuracy(model, tokenizer, wild_rows, template,
                                               restrict_to_labels=False)} if wild_rows else {}),
        }
    return reports


def bleu_rouge(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
    """Corpus BLEU (sacrebleu, 0-100) and mean ROUGE-1 / ROUGE-L F1 (rouge-score, 0-1)."""
    import sacrebleu
    from rouge_score import rouge_scorer

    if len(hypotheses) != len(references) or not references:
        raise ValueError("hypotheses and references must be non-empty and of equal length")
    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"])
    scores = [scorer.score(ref, hyp) for hyp, ref in zip(hypotheses, references, strict=True)]
    return {"bleu": sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score,
            "rouge1": sum(s["rouge1"].fmeasure for s in scores) / len(scores),
            "rougeL": sum(s["rougeL"].fmeasure for s in scores) / len(scores)}
