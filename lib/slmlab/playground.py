"""A generation playground: one prompt answered by the merged PyTorch model or an ONNX
export, token by token, with the decode speed and the tone the model gives the text; and an
adapter switch: one ONNX base answering with each LoRA adapter, or with none.

Plain generators, so the widgets (`slmlab.widgets.chat_playground`, `adapter_switch`) only
display what they yield and the tests need no browser.
"""

import time
from collections.abc import Iterator

import torch

from slmlab import export
from slmlab.task import NOT_A_LABEL, build_prompts, label_token_ids, predict_tones


def chat_prompt(tokenizer, text: str) -> str:
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                         add_generation_prompt=True)


def fit_to_context(tokenizer, text: str, max_new_tokens: int) -> tuple[str, bool]:
    """`text` cut at a token boundary, if need be, so that its prompt (chat or text
    template) and `max_new_tokens` fit the model's context (`tokenizer.model_max_length`:
    512 for the zoo, 4096 for Phi-3-mini-4k); and whether it was cut. Past the context,
    ORT-GenAI refuses to generate and PyTorch reads positions it never trained on."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    # the longer of the two templates, plus a few tokens for merges at the text's edges
    overhead = max(len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
                   for prompt in (chat_prompt(tokenizer, ""), build_prompts(tokenizer, [""])[0]))
    room = tokenizer.model_max_length - max_new_tokens - overhead - 4
    if len(ids) <= room:
        return text, False
    return tokenizer.decode(ids[:max(room, 0)]), True


@torch.no_grad()
def torch_pieces(model, tokenizer, prompt: str, max_new_tokens: int) -> Iterator[str]:
    """Greedy decoding with the KV cache, one token at a time: each new piece of text."""
    model.eval()
    end = tokenizer.convert_tokens_to_ids("<|end|>")
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    past, produced, shown = None, [], ""
    for _ in range(max_new_tokens):
        output = model(input_ids=ids, past_key_values=past, use_cache=True)
        past, next_id = output.past_key_values, int(output.logits[0, -1].argmax())
        if next_id in (end, tokenizer.eos_token_id):
            return
        produced.append(next_id)
        text = tokenizer.decode(produced)  # whole words: byte pieces join up once complete
        yield text[len(shown):]
        shown = text
        ids = torch.tensor([[next_id]])


def og_pieces(og_model, prompt: str, max_new_tokens: int) -> Iterator[str]:
    """The same with onnxruntime-genai: its tokenizer stream turns tokens into text."""
    import onnxruntime_genai as og

    og_tokenizer = og.Tokenizer(og_model)
    stream = og_tokenizer.create_stream()
    input_ids = og_tokenizer.encode(prompt)
    params = og.GeneratorParams(og_model)
    params.set_search_options(do_sample=False, max_length=len(input_ids) + max_new_tokens)
    generator = og.Generator(og_model, params)
    generator.append_tokens(input_ids)
    while not generator.is_done():
        generator.generate_next_token()
        yield stream.decode(generator.get_next_tokens()[0])


def timed(pieces: Iterator[str]) -> Iterator[tuple[str, dict]]:
    """Pass the pieces on, each with the figures so far: tokens, seconds, and decode
    tokens/s — timed after the first token, which processes the prompt (as lab 05 times
    PyTorch and ORT-GenAI); 0.0 until a second token has come out."""
    start, first, count = time.perf_counter(), None, 0
    for piece in pieces:
        count += 1
        now = time.perf_counter()
        if first is None:
            first = now
        yield piece, {"tokens": count, "seconds": now - start,
                      "tokens_per_s": (count - 1) / (now - first) if now > first else 0.0}


def tone_of(engine, tokenizer, phrase: str) -> str:
    """The tone the model gives `phrase` with the course's text template: its greedy first
    token (`NOT_A_LABEL` when that is not a tone). `engine`: a PyTorch model or an og.Model."""
    if isinstance(engine, torch.nn.Module):
        return predict_tones(engine, tokenizer, [phrase], restrict_to_labels=False)[0]
    ids = tokenizer(build_prompts(tokenizer, [phrase])[0], add_special_tokens=False)["input_ids"]
    token = export.og_generate(engine, ids, 1)[0][0]
    tone_for = {token_id: tone for tone, token_id in label_token_ids(tokenizer).items()}
    return tone_for.get(token, NOT_A_LABEL)


def adapter_answers(og_model, adapters, tokenizer, phrase: str, names: list[str],
                    max_new_tokens: int = 4) -> dict[str, dict]:
    """{adapter name or "no adapter": its answer to `phrase` (text template), the time
    activating the adapter took and the whole answer's time}: one ONNX base, switched."""
    phrase, _ = fit_to_context(tokenizer, phrase, max_new_tokens)
    ids = tokenizer(build_prompts(tokenizer, [phrase])[0], add_special_tokens=False)["input_ids"]
    answers = {}
    for name in [*names, None]:
        timings, start = {}, time.perf_counter()
        tokens, _ = export.og_generate(og_model, ids, max_new_tokens,
                                       adapters=adapters if name else None, adapter=name,
                                       timings=timings)
        answers[name or "no adapter"] = {
            "answer": tokenizer.decode(tokens, skip_special_tokens=True).strip(),
            "switch_ms": timings["switch_ms"],
            "total_ms": 1000 * (time.perf_counter() - start)}
    return answers
