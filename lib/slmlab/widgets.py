"""Thin ipywidgets front ends (JupyterLab) over plain functions of the package.

A control computes nothing itself: moving it calls the function named in the builder's
docstring and shows the numbers that function returns, so the logic is tested without a
browser. Displayed under papermill or nbval (no browser, nobody clicking) a widget
renders its first state and waits; nothing in a run depends on it being used.
"""

from html import escape

import ipywidgets as widgets
import torch

from slmlab import playground, presets


def _table(css_class: str, header: list[str], rows: list[list[str]]) -> str:
    pad = 'style="padding: 2px 14px; text-align: right"'
    cells = "".join(f"<th {pad}>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td {pad}>{escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f'<table class="{css_class}"><tr>{cells}</tr>{body}</table>'


def lora_budget(model, rank: int = 8, alpha: int = 16,
                targets: tuple[str, ...] = ("qkv_proj", "o_proj")) -> widgets.VBox:
    """Rank and alpha sliders and a checkbox per Phi-3 projection; shows what
    `presets.lora_footprint` counts on `model` and on Phi-3-mini's shape."""
    models = {"this zoo model": model, "Phi-3-mini (3.8 B)": presets.phi3_mini_skeleton()}
    rank_slider = widgets.IntSlider(value=rank, min=1, max=64, description="rank r")
    alpha_slider = widgets.IntSlider(value=alpha, min=1, max=128, description="alpha")
    boxes = {name: widgets.Checkbox(value=name in targets, description=name, indent=False)
             for name in presets.PHI3_LORA_TARGETS}
    shown = widgets.HTML()

    def update(_change=None) -> None:
        chosen = [name for name, box in boxes.items() if box.value]
        if not chosen:
            shown.value = "<p>Choose at least one module to adapt.</p>"
            return
        rows = []
        for name, counted in models.items():
            f = presets.lora_footprint(counted, rank_slider.value, alpha_slider.value, chosen)
            rows.append([name, f"{f['trainable']:,}", f"{f['percent']:.3f} %",
                         f"{f['adapter_mb']:.2f} MB"])
        scale = alpha_slider.value / rank_slider.value
        shown.value = (_table("lora-budget", ["model", "trainable parameters", "of the model",
                                              "adapter (fp32)"], rows)
                       + f"<p>update scale alpha / r = {scale:.2f}</p>")

    for control in (rank_slider, alpha_slider, *boxes.values()):
        control.observe(update, names="value")
    update()
    return widgets.VBox([rank_slider, alpha_slider, widgets.HBox(list(boxes.values())), shown])


def chat_playground(engines: dict, tokenizer, max_new_tokens: int = 48,
                    text: str = "I got the job I wanted!") -> widgets.VBox:
    """A text box, a model choice and a Generate button: streams the answer that
    `playground.torch_pieces` / `playground.og_pieces` yield, then the decode speed and
    `playground.tone_of` the text. `engines`: {name: PyTorch model or og.Model}."""
    box = widgets.Textarea(value=text, description="you", layout={"width": "90%"})
    choice = widgets.Dropdown(options=list(engines), description="model")
    button = widgets.Button(description="Generate", button_style="primary")
    answer, figures = widgets.HTML(), widgets.HTML()

    def generate(_button) -> None:
        button.disabled, answer.value, figures.value = True, "", "generating..."
        engine = engines[choice.value]
        prompt = playground.chat_prompt(tokenizer, box.value)
        pieces = (playground.torch_pieces(engine, tokenizer, prompt, max_new_tokens)
                  if isinstance(engine, torch.nn.Module)
                  else playground.og_pieces(engine, prompt, max_new_tokens))
        try:
            text, speed = "", f"0 tokens ({escape(choice.value)})"
            for piece, so_far in playground.timed(pieces):
                text += piece
                answer.value = f'<pre class="playground-answer">{escape(text)}</pre>'
                speed = (f'{so_far["tokens"]} tokens, {so_far["tokens_per_s"]:.0f} tokens/s '
                         f"({escape(choice.value)})")
            tone = playground.tone_of(engine, tokenizer, box.value)
            figures.value = (f'<p class="playground-figures">{speed}; tone of your text: '
                             f"<b>{escape(tone)}</b></p>")
        except Exception as error:  # shown on the page: a callback's traceback is not
            figures.value = f"<p>failed: {escape(f'{type(error).__name__}: {error}')}</p>"
        finally:
            button.disabled = False

    button.on_click(generate)
    return widgets.VBox([box, widgets.HBox([choice, button]), answer, figures])
