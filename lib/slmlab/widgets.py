"""Thin ipywidgets front ends (JupyterLab) over plain functions of the package.

A control computes nothing itself: moving it calls the function named in the builder's
docstring and shows the numbers that function returns, so the logic is tested without a
browser. Displayed under papermill or nbval (no browser, nobody clicking) a widget
renders its first state and waits; nothing in a run depends on it being used.
"""

import math
from html import escape

import ipywidgets as widgets
import torch

from slmlab import distill, hyperparameter_search, playground, presets, qlora
from slmlab.lexicon import TONES


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
        typed, cut = playground.fit_to_context(tokenizer, box.value, max_new_tokens)
        prompt = playground.chat_prompt(tokenizer, typed)
        pieces = (playground.torch_pieces(engine, tokenizer, prompt, max_new_tokens)
                  if isinstance(engine, torch.nn.Module)
                  else playground.og_pieces(engine, prompt, max_new_tokens))
        try:
            text, speed = "", f"0 tokens ({escape(choice.value)})"
            for piece, so_far in playground.timed(pieces):
                text += piece
                answer.value = f'<pre class="playground-answer">{escape(text)}</pre>'
                speed = (f'{so_far["tokens"]} tokens, {so_far["tokens_per_s"]:.0f} tokens/s '
                         f"after the first ({escape(choice.value)})")
            tone = playground.tone_of(engine, tokenizer, typed)   # of the text, not the answer
            note = (f" (your text was cut to fit the model's context of "
                    f"{tokenizer.model_max_length} tokens)" if cut else "")
            figures.value = (f'<p class="playground-figures">{speed}; tone of your text: '
                             f"<b>{escape(tone)}</b>{note}</p>")
        except Exception as error:  # shown on the page: a callback's traceback is not
            figures.value = f"<p>failed: {escape(f'{type(error).__name__}: {error}')}</p>"
        finally:
            button.disabled = False

    button.on_click(generate)
    return widgets.VBox([box, widgets.HBox([choice, button]), answer, figures])


def _bars(css_class: str, series: dict[str, list[float]], labels: list[str]) -> str:
    """Horizontal bars, one group per label, one bar per series: plain HTML, no plot."""
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c"]
    rows = []
    for i, label in enumerate(labels):
        for j, ((name, values), color) in enumerate(zip(series.items(), colors, strict=False)):
            bar = (f'<div style="background: {color}; height: 12px; '
                   f'width: {100 * values[i]:.1f}%"></div>')
            rows.append(f"<tr><td>{escape(label) if j == 0 else ''}</td>"
                        f"<td>{escape(name)}</td><td style='width: 320px'>{bar}</td>"
                        f"<td>{values[i]:.2f}</td></tr>")
    return f'<table class="{css_class}">{"".join(rows)}</table>'


def temperature_explorer(teacher, student, tokenizer, phrases: list[str],
                         temperature: float = 2.0, alpha: float = 0.5) -> widgets.VBox:
    """A temperature slider and a phrase picker; shows what `distill.temperature_view`
    returns: teacher's and student's tone distributions at T, and the KD loss."""
    slider = widgets.FloatLogSlider(value=temperature, base=2, min=-2, max=3, step=0.25,
                                    description="T", readout_format=".2f")
    picker = widgets.Dropdown(options=phrases, description="phrase",
                              layout={"width": "90%"})
    shown = widgets.HTML()

    def update(_change=None) -> None:
        view = distill.temperature_view(teacher, student, tokenizer, picker.value,
                                        slider.value, alpha)
        shown.value = (_bars("temperature-bars", {"teacher": view["teacher"],
                                                  "student": view["student"]}, list(TONES))
                       + f'<p class="kd-loss">KD loss {view["kd_loss"]:.3f} = {alpha} × '
                       f'T² ({slider.value ** 2:.2f}) × KL {view["kl"]:.3f} + {1 - alpha} × '
                       f'CE {view["cross_entropy"]:.3f}</p>')

    for control in (slider, picker):
        control.observe(update, names="value")
    update()
    return widgets.VBox([slider, picker, shown])


def nf4_explorer(model, block_size: int = 64) -> widgets.VBox:
    """A layer and a block of `block_size` weights; plots what `qlora.nf4_block` returns
    (the block's weights, its 16 scaled NF4 levels) with the rounding error, and the
    storage per weight from `qlora.bits_per_weight` with and without double quantization.

    The plot is a PNG in an Image widget, not matplotlib output captured by an Output
    widget: under papermill, nbclient mirrors an Output widget by sending its state back on
    the shell channel while it waits there for the cell's reply, and that reply was then
    sometimes never read (measured: 31 of 180 such cells stalled until the cell timeout,
    0 of 180 with an Image widget; with no timeout, as in `make course`, lab 04 hung)."""
    import io

    from matplotlib.figure import Figure

    layers = {name: module.weight for name, module in model.named_modules()
              if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head")}
    picker = widgets.Dropdown(options=list(layers), description="layer",
                              layout={"width": "60%"})
    block = widgets.IntSlider(value=0, min=0, description="block")
    plot, figures = widgets.Image(format="png"), widgets.HTML()
    storage = {dq: qlora.bits_per_weight(block_size, dq) for dq in (False, True)}

    def update(_change=None) -> None:
        weight = layers[picker.value]
        block.max = weight.numel() // block_size - 1
        view = qlora.nf4_block(weight, min(block.value, block.max), block_size)
        fig = Figure(figsize=(7, 2.4))   # not pyplot: nothing left open, nothing shown twice
        axis = fig.subplots()
        axis.hist(view["weights"], bins=32, color="tab:blue", alpha=0.7)
        for level in view["levels"]:
            axis.axvline(level, color="tab:red", linewidth=0.8)
        axis.set_xlabel(f"weights of block {block.value} (red: the 16 NF4 levels × absmax)")
        fig.tight_layout()
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=100)
        plot.value = png.getvalue()
        figures.value = (f'<p class="nf4-figures">absmax {view["absmax"]:.4f}; mean |rounding '
                         f'error| {view["mean_abs_error"]:.5f} ({view["relative_error"]:.1%} of '
                         f"the mean |weight|); storage {storage[False]:.3f} bits per weight "
                         f"with an fp32 scale per block, {storage[True]:.3f} with double "
                         f"quantization ({storage[True] / 8:.3f} bytes; fp32 is 4)</p>")

    for control in (picker, block):
        control.observe(update, names="value")
    update()
    return widgets.VBox([picker, block, plot, figures])


def adapter_switch(og_model, adapters, tokenizer, names: list[str],
                   phrase: str = "My hands shook as the lights went out.") -> widgets.VBox:
    """A text box and an Answer button: the table `playground.adapter_answers` returns,
    one ONNX base answering with each adapter and with none, and each switch's time."""
    box = widgets.Text(value=phrase, description="phrase", continuous_update=False,
                       layout={"width": "70%"})  # continuous_update off: on Enter
    button = widgets.Button(description="Answer", button_style="primary")
    shown = widgets.HTML()

    def update(_event=None) -> None:
        answers = playground.adapter_answers(og_model, adapters, tokenizer, box.value, names)
        shown.value = _table("adapter-answers", ["adapter", "answer", "switch", "answer time"],
                             [[name, a["answer"], f"{a['switch_ms']:.3f} ms",
                               f"{a['total_ms']:.1f} ms"] for name, a in answers.items()])

    button.on_click(update)
    box.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([box, button]), shown])


def sweep_explorer(trials: list[dict], learning_rate: float = 3e-3) -> widgets.VBox:
    """A learning-rate slider and rank / batch pickers over a sweep's stored trials; shows the
    trials `hyperparameter_search.nearest_trials` returns. Nothing is retrained.

    Each trial: learning_rate, rank, batch_size, validation_accuracy, accuracy, and
    optionally validation_std (over seeds)."""
    rates = [t["learning_rate"] for t in trials]
    slider = widgets.FloatLogSlider(value=learning_rate, base=10,
                                    min=math.log10(min(rates)), max=math.log10(max(rates)),
                                    step=0.05, description="learning rate",
                                    readout_format=".1e")
    def picker(key: str, description: str) -> widgets.Dropdown:   # "any", then each value
        values = sorted({t[key] for t in trials})
        return widgets.Dropdown(options=[("any", None)] + [(str(v), v) for v in values],
                                description=description)

    rank, batch = picker("rank", "rank"), picker("batch_size", "batch")
    shown = widgets.HTML()

    def update(_change=None) -> None:
        near = hyperparameter_search.nearest_trials(trials, slider.value, rank.value, batch.value)
        if not near:
            shown.value = "<p>No stored trial has this rank and batch size.</p>"
            return
        rows = [[f"{t['learning_rate']:.1e}", t["rank"], t["batch_size"],
                 f"{t['validation_accuracy']:.1%}" + (f" ± {t['validation_std']:.1%}"
                                                      if t.get("validation_std") else ""),
                 f"{t['accuracy']:.1%}"] for t in near]
        shown.value = _table("sweep-explorer", ["learning rate", "rank", "batch",
                                                "validation accuracy", "test accuracy"], rows)

    for control in (slider, rank, batch):
        control.observe(update, names="value")
    update()
    return widgets.VBox([slider, widgets.HBox([rank, batch]), shown])
