"""The tone task: prompt templates, examples, label tokens and predictions.

Every lab asks the same question: given a phrase, which tone (joy, sadness, fear,
surprise)? The question is written here and only here, in a text template
(`### Text: {phrase}\\n### The tone is:\\n{tone}`) and a chat variant. A tone is predicted
by comparing the next-token logits of the four single-token labels at the end of the
prompt; comparing whole-label log-likelihoods would favour short labels.
"""

from collections.abc import Sequence

import torch

from slmlab.lexicon import TONES

TEXT_TEMPLATE = "### Text: {phrase}\n### The tone is:\n{tone}"
CHAT_QUESTION = "What is the tone of this text? Answer with one word.\n{phrase}"
TEMPLATES = ("text", "chat")
NOT_A_LABEL = "(not a label)"


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


def _check_template(template: str) -> None:
    if template not in TEMPLATES:
        raise ValueError(f"template must be 'text' or 'chat', not {template!r}")


def examples(rows: Sequence[dict], template: str = "text") -> list[dict]:
    """Prompt/completion records of labelled rows, for TRL's SFTTrainer. In the chat
    template both are messages: TRL applies the tokenizer's chat template itself."""
    _check_template(template)
    if template == "text":
        return [text_example(r["phrase"], r["tone"]) for r in rows]
    return [{"prompt": chat_messages(r["phrase"]),
             "completion": chat_messages(r["phrase"], r["tone"])[1:]} for r in rows]


def build_prompts(tokenizer, phrases: Sequence[str], template: str = "text") -> list[str]:
    """Prompts ending where the tone is written: `template` is "text" or "chat"."""
    _check_template(template)
    if template == "text":
        return [text_prompt(p) for p in phrases]
    return [tokenizer.apply_chat_template(chat_messages(p), tokenize=False,
                                          add_generation_prompt=True) for p in phrases]


def label_token_ids(tokenizer, labels: Sequence[str] = TONES) -> dict[str, int]:
    """{label: the single token it is written with after the prompt's newline}."""
    ids = {}
    for label in labels:
        pieces = tokenizer("\n" + label, add_special_tokens=False)["input_ids"]
        if len(pieces) != 2:
            raise ValueError(f"label {label!r} is not a single token after a newline")
        ids[label] = pieces[1]
    return ids


@torch.no_grad()
def last_token_logits(model, tokenizer, prompts: Sequence[str],
                      batch_size: int = 32) -> torch.Tensor:
    """Logits of the token after each prompt (prompts x vocabulary), on the CPU. The
    tokenizer pads on the left (zoo.load_tokenizer sets it), so position -1 is each
    prompt's last token."""
    model.eval()
    if not prompts:  # e.g. every synthetic phrase filtered out: no rows, not an error
        return torch.empty(0, model.config.vocab_size)
    chunks = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(list(prompts[start:start + batch_size]), return_tensors="pt",
                          padding=True, add_special_tokens=False).to(model.device)
        chunks.append(model(**batch, logits_to_keep=1).logits[:, -1, :].float().cpu())
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
    logits = last_token_logits(model, tokenizer, build_prompts(tokenizer, phrases, template),
                               batch_size)
    if restrict_to_labels:
        return [TONES[i] for i in logits[:, list(label_ids.values())].argmax(-1).tolist()]
    tone_of = {token: tone for tone, token in label_ids.items()}
    return [tone_of.get(i, NOT_A_LABEL) for i in logits.argmax(-1).tolist()]
