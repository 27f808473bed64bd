"""Builds the zoo from nothing: a byte-level BPE tokenizer and pretrained tiny Phi-3s.

Deterministic: a fixed seed, a fixed step count and two threads give the same weights
hash on every run (checked by `tests/test_zoo.py` on a short build). The figures of each
build (parameters, time, tokens/s, held-out perplexity next to an untrained model of the
same config, weights hash) go to `models/zoo_card.json`.
"""

import hashlib
import json
import math
import sys
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm.auto import tqdm
from transformers import GenerationConfig, Phi3ForCausalLM, PreTrainedTokenizerFast

from slmlab import MODELS_DIR
from slmlab.corpus import END_OF_TEXT, make_corpus
from slmlab.lexicon import TONES
from slmlab.metrics import perplexity
from slmlab.zoo import ZOO, phi3_config

SPECIAL_TOKENS = [END_OF_TEXT, "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]
# Phi-3's chat template: each turn is "<|role|>\n{content}<|end|>\n".
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
VOCAB_SIZE = 2048
SEQ_LEN = 64
BATCH_SIZE = 32
CORPUS_SEED, HELDOUT_SEED = 1234, 999
N_DOCUMENTS, N_HELDOUT_DOCUMENTS = 40_000, 1_000


def train_tokenizer(documents: list[str]) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with Phi-3's special tokens and chat template."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    bpe.train_from_iterator(documents, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=END_OF_TEXT, eos_token=END_OF_TEXT,
        pad_token=END_OF_TEXT, additional_special_tokens=SPECIAL_TOKENS[1:],
        model_max_length=512, padding_side="left",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    for tone in TONES:  # the tone task needs each label to be one well-trained piece
        pieces = tokenizer.tokenize("\n" + tone)
        if pieces[1:] != [tone]:
            raise RuntimeError(f"label {tone!r} is not one token after a newline: {pieces}")
    return tokenizer


def token_stream(tokenizer, documents: list[str]) -> torch.Tensor:
    """All documents as one long tensor of token IDs, separated by <|endoftext|>."""
    ids = tokenizer(END_OF_TEXT.join(documents) + END_OF_TEXT, verbose=False)["input_ids"]
    return torch.tensor(ids, dtype=torch.long)


def pretrain(model, stream: torch.Tensor, steps: int, seed: int, lr: float = 3e-3,
             desc: str = "pretrain") -> dict:
    """Next-token training on random windows of `stream`; returns speed figures."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(  # warmup, then cosine to 10 %
        optimizer, lambda s: min(1.0, (s + 1) / warmup)
        * (0.55 + 0.45 * math.cos(math.pi * min(s, steps) / steps)))
    model.train()
    start, bar = time.perf_counter(), tqdm(range(steps), desc=desc, mininterval=2)
    for step in bar:
        starts = torch.randint(0, len(stream) - SEQ_LEN - 1, (BATCH_SIZE,), generator=generator)
        batch = torch.stack([stream[s:s + SEQ_LEN] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    seconds = time.perf_counter() - start
    return {"pretrain_seconds": round(seconds, 1), "final_loss": round(loss.item(), 4),
            "tokens_per_second": round(steps * BATCH_SIZE * SEQ_LEN / seconds)}


def weights_sha256(model_dir: Path) -> str:
    return hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()


def build_model(name: str, tokenizer, stream, heldout, out_dir: Path, steps: int) -> dict:
    """Initialise, measure untrained perplexity, pretrain, save, and return the figures."""
    torch.manual_seed(0)
    model = Phi3ForCausalLM(phi3_config(name, tokenizer))
    untrained_ppl = perplexity(model, heldout)
    figures = pretrain(model, stream, steps, seed=1, desc=f"pretrain {name}")
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.convert_tokens_to_ids("<|end|>"), tokenizer.eos_token_id],
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    figures.update(
        parameters=sum(p.numel() for p in model.parameters()), steps=steps,
        heldout_perplexity=round(perplexity(model, heldout), 2),
        untrained_heldout_perplexity=round(untrained_ppl, 1),
        weights_sha256=weights_sha256(out_dir),
    )
    return figures


def build_zoo(out_root: Path = MODELS_DIR, force: bool = False,
              steps: dict[str, int] | None = None, n_documents: int = N_DOCUMENTS,
              n_heldout: int = N_HELDOUT_DOCUMENTS) -> dict:
    """Build every zoo model missing from `out_root` (all of them with `force`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # fixed so the float sums, and so the hash, repeat
    try:
        return _build_missing(out_root, force, steps, n_documents, n_heldout)
    finally:  # a caller (a test worker with one thread per core) keeps its own setting
        torch.set_num_threads(threads)


def _build_missing(out_root: Path, force: bool, steps: dict[str, int] | None,
                   n_documents: int, n_heldout: int) -> dict:
    wanted = [n for n in ZOO if force or not (out_root / n / "config.json").exists()]
    card_path = out_root / "zoo_card.json"
    card = json.loads(card_path.read_text()) if card_path.exists() and not force else {}
    if not wanted:
        return card
    start = time.perf_counter()
    documents = make_corpus(n_documents, CORPUS_SEED)
    tokenizer = train_tokenizer(documents)
    stream = token_stream(tokenizer, documents)
    heldout = token_stream(tokenizer, make_corpus(n_heldout, HELDOUT_SEED))
    card["corpus"] = {"documents": n_documents, "tokens": len(stream),
                      "heldout_tokens": len(heldout), "vocab_size": len(tokenizer)}
    for name in wanted:
        model_steps = (steps or {}).get(name, ZOO[name]["pretrain_steps"])
        card[name] = build_model(name, tokenizer, stream, heldout, out_root / name, model_steps)
        print(f"{name}: {json.dumps(card[name])}")
    card["build_seconds"] = round(time.perf_counter() - start, 1)
    out_root.mkdir(parents=True, exist_ok=True)
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return card


if __name__ == "__main__":
    # `make zoo` builds what is missing; --force rebuilds every model from scratch
    if sys.argv[1:] not in ([], ["--force"]):
        sys.exit("usage: python -m slmlab.pretrain [--force]")
    build_zoo(force=sys.argv[1:] == ["--force"])
