"""Metrics the labs report: tone accuracy and macro-F1, perplexity, latency, memory, speed.

A tone is predicted by comparing the next-token logits of the four single-token labels
at the end of the prompt; comparing whole-label log-likelihoods would favour short labels.
"""

import math
import statistics
import time
from collections.abc import Callable, Sequence

import psutil
import torch

from slmlab.data import chat_messages, text_prompt
from slmlab.lexicon import TONES

NOT_A_LABEL = "(not a label)"


def label_token_ids(tokenizer, labels: Sequence[str] = TONES) -> list[int]:
    """The single token each label is written with after the prompt's newline."""
    ids = []
    for label in labels:
        pieces = tokenizer("\n" + label, add_special_tokens=False)["input_ids"]
        if len(pieces) != 2:
            raise ValueError(f"label {label!r} is not a single token after a newline")
        ids.append(pieces[1])
    return ids


def build_prompts(tokenizer, phrases: Sequence[str], template: str = "text") -> list[str]:
    """Prompts ending where the tone is written: `template` is "text" or "chat"."""
    if template == "text":
        return [text_prompt(p) for p in phrases]
    if template == "chat":
        return [tokenizer.apply_chat_template(chat_messages(p), tokenize=False,
                                              add_generation_prompt=True) for p in phrases]
    raise ValueError(f"template must be 'text' or 'chat', not {template!r}")


@torch.no_grad()
def next_token_logits(model, tokenizer, prompts: Sequence[str],
                      batch_size: int = 32) -> torch.Tensor:
    """Logits of the token after each prompt (prompts x vocabulary), on the CPU."""
    model.eval()
    tokenizer.padding_side = "left"  # so position -1 is each prompt's last token
    chunks = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(list(prompts[start:start + batch_size]), return_tensors="pt",
                          padding=True, add_special_tokens=False).to(model.device)
        chunks.append(model(**batch).logits[:, -1, :].float().cpu())
    return torch.cat(chunks)


def predict_tones(model, tokenizer, phrases: Sequence[str], template: str = "text",
                  batch_size: int = 32, restrict_to_labels: bool = True) -> list[str]:
    """The predicted tone of each phrase, from the next-token logits after the prompt.

    With `restrict_to_labels` (a classifier's view) the answer is the label whose token
    scores highest: it probes what the model knows. Without it (a chatbot's view) the
    answer is the model's own greedy next token, and anything but a label token counts
    as `NOT_A_LABEL`: it measures whether the model does the task.
    """
    label_ids = label_token_ids(tokenizer)
    logits = next_token_logits(model, tokenizer, build_prompts(tokenizer, phrases, template),
                               batch_size)
    if restrict_to_labels:
        return [TONES[i] for i in logits[:, label_ids].argmax(-1).tolist()]
    return [TONES[label_ids.index(i)] if i in label_ids else NOT_A_LABEL
            for i in logits.argmax(-1).tolist()]


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


def tone_accuracy(model, tokenizer, rows: Sequence[dict], template: str = "text",
                  restrict_to_labels: bool = True) -> float:
    """Accuracy of `predict_tones` on labelled rows."""
    predictions = predict_tones(model, tokenizer, [r["phrase"] for r in rows], template,
                                restrict_to_labels=restrict_to_labels)
    return accuracy(predictions, [r["tone"] for r in rows])


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
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def weight_memory_mb(model: torch.nn.Module) -> float:
    """Megabytes held by parameters and buffers."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors) / 1e6


def process_memory_mb() -> float:
    """Resident memory of this process now, in megabytes."""
    return psutil.Process().memory_info().rss / 1e6


@torch.no_grad()
def generation_speed(model, tokenizer, prompt: str, new_tokens: int = 32) -> dict:
    """Greedy generation of exactly `new_tokens` tokens; returns text and tokens/s."""
    model.eval()
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
    start = time.perf_counter()
    output = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                            do_sample=False, pad_token_id=tokenizer.pad_token_id)
    seconds = time.perf_counter() - start
    new = output[0, inputs["input_ids"].shape[1]:]
    return {"text": tokenizer.decode(new, skip_special_tokens=False),
            "tokens_per_second": len(new) / seconds}


def tone_report(model, tokenizer, rows: Sequence[dict], template: str = "text",
                latency_repeats: int = 20) -> dict:
    """Accuracy, macro-F1, batch-1 latency, batch-32 throughput, size of one model."""
    phrases, targets = [r["phrase"] for r in rows], [r["tone"] for r in rows]
    predictions = predict_tones(model, tokenizer, phrases, template, restrict_to_labels=False)
    latency = median_latency_ms(lambda: predict_tones(model, tokenizer, phrases[:1], template),
                                repeats=latency_repeats)
    batch_ms = median_latency_ms(lambda: predict_tones(model, tokenizer, phrases[:32], template),
                                 repeats=max(3, latency_repeats // 4))
    return {
        "accuracy": accuracy(predictions, targets),
        "macro_f1": macro_f1(predictions, targets),
        "latency_ms": latency,
        "throughput_per_s": min(32, len(phrases)) / (batch_ms / 1000),
        "parameters": sum(p.numel() for p in model.parameters()),
        "weight_mb": weight_memory_mb(model),
    }


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
