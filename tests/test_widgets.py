"""The logic behind the labs' widgets, without a browser (tests/test_browser.py clicks them)."""

import copy

import pytest
import torch

from slmlab import export, olive_pipeline, playground, presets, widgets, zoo


def lora_size_by_hand(model, r: int, targets: list[str]) -> int:
    """r * (in + out) for every adapted nn.Linear: LoRA's A (r x in) and B (out x r)."""
    return sum(r * (m.in_features + m.out_features) for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in targets)


@pytest.mark.parametrize("r,targets", [(8, ["qkv_proj", "o_proj"]), (3, ["down_proj"]),
                                       (16, presets.PHI3_LORA_TARGETS)])
def test_lora_footprint_counts_what_peft_adds_without_touching_the_model(teacher, r, targets):
    model, _ = teacher
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for counted in (model, presets.phi3_mini_skeleton()):
        footprint = presets.lora_footprint(counted, r, 2 * r, targets)
        assert footprint["trainable"] == lora_size_by_hand(counted, r, targets)
        assert footprint["adapter_mb"] == pytest.approx(4 * footprint["trainable"] / 1e6)
        total = sum(p.numel() for p in counted.parameters()) + footprint["trainable"]
        assert footprint["percent"] == pytest.approx(100 * footprint["trainable"] / total)
    assert model.state_dict().keys() == before.keys(), "no LoRA layers left in the model"
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_phi3_mini_skeleton_has_phi3_minis_parameter_count():
    # 3.82 B, as published for microsoft/Phi-3-mini-4k-instruct
    assert sum(p.numel() for p in presets.phi3_mini_skeleton().parameters()) == 3_821_079_552


def test_lora_footprint_needs_a_module():
    with pytest.raises(ValueError, match="at least one module"):
        presets.lora_footprint(torch.nn.Linear(2, 2), 4, 8, [])


def test_moving_the_rank_slider_shows_the_new_count(teacher):
    model, _ = teacher
    explorer = widgets.lora_budget(model, rank=8, targets=("qkv_proj", "o_proj"))
    rank_slider, table = explorer.children[0], explorer.children[-1]
    rank_slider.value = 9
    expected = presets.lora_footprint(model, 9, 16, ["qkv_proj", "o_proj"])["trainable"]
    assert f">{expected:,}</td>" in table.value
    for box in explorer.children[2].children:
        box.value = False
    assert "at least one module" in table.value


def test_streamed_pytorch_answer_is_greedy_generate_token_for_token(teacher):
    model, tokenizer = teacher
    prompt = playground.chat_prompt(tokenizer, "What does it mean to be terrified?")
    streamed = "".join(playground.torch_pieces(model, tokenizer, prompt, 24))
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    output = model.generate(**ids, max_new_tokens=24, do_sample=False,
                            eos_token_id=tokenizer.convert_tokens_to_ids("<|end|>"),
                            pad_token_id=tokenizer.pad_token_id)
    assert streamed == tokenizer.decode(output[0, ids["input_ids"].shape[1]:],
                                        skip_special_tokens=True)
    assert streamed


@pytest.mark.slow
def test_streamed_onnx_answer_and_tone_match_pytorch(teacher, tmp_path):
    import onnxruntime_genai as og

    model, tokenizer = teacher  # (the student's head size, 24, is no multiple of 16: ORT)
    og_model = og.Model(str(export.build_onnx(zoo.resolve("tiny-phi3-teacher"),
                                              tmp_path / "onnx", "fp32")))
    prompt = playground.chat_prompt(tokenizer, "Tell me about the sea.")
    from_onnx = "".join(playground.og_pieces(og_model, prompt, 16))
    from_torch = "".join(playground.torch_pieces(model, tokenizer, prompt, 16))
    assert from_onnx.startswith(from_torch) and from_torch  # ONNX may also print <|end|>
    for phrase in ("I got the job!", "The storm frightened me."):
        assert playground.tone_of(og_model, tokenizer, phrase) == playground.tone_of(
            model, tokenizer, phrase)
    # a pasted text longer than the context: ORT-GenAI refused it ("max_length cannot be
    # greater than model context_length"); cut to fit, both engines answer, and alike
    pasted = "We walked along the river and talked about the week. " * 60
    text, cut = playground.fit_to_context(tokenizer, pasted, 16)
    assert cut and pasted.startswith(text)
    prompt = playground.chat_prompt(tokenizer, text)
    assert len(tokenizer(prompt)["input_ids"]) + 16 <= tokenizer.model_max_length
    assert "".join(playground.og_pieces(og_model, prompt, 16)).startswith(
        "".join(playground.torch_pieces(model, tokenizer, prompt, 16)))
    assert playground.tone_of(og_model, tokenizer, text) == playground.tone_of(
        model, tokenizer, text)
    assert playground.fit_to_context(tokenizer, "I got the job!", 16) == ("I got the job!", False)


def test_the_playground_button_streams_an_answer_and_its_figures(teacher, monkeypatch):
    model, tokenizer = teacher
    tone_of, asked = playground.tone_of, []   # which text the page asks the tone of

    def recording_tone_of(engine, tokenizer, phrase):
        asked.append(phrase)
        return tone_of(engine, tokenizer, phrase)

    monkeypatch.setattr(playground, "tone_of", recording_tone_of)
    page = widgets.chat_playground({"PyTorch fp32": model}, tokenizer, max_new_tokens=8)
    button = page.children[1].children[1]
    button.click()  # the same callback a click in the browser runs
    answer, figures = page.children[2].value, page.children[3].value
    assert 'class="playground-answer"' in answer
    assert "tokens/s after the first (PyTorch fp32)" in figures
    assert "tone of your text" in figures and not button.disabled
    assert asked == [page.children[0].value], "the tone of the typed text, not of the answer"
    assert f"tone of your text: <b>{tone_of(model, tokenizer, asked[0])}</b>" in figures
    page.children[0].value = "It rained all day and I stayed in. " * 80   # past the context
    button.click()
    figures = page.children[3].value
    assert "tokens/s after the first (PyTorch fp32)" in figures
    assert "cut to fit the model's context" in figures
    assert asked[1] == playground.fit_to_context(tokenizer, page.children[0].value, 8)[0]


def test_temperature_view_softens_and_its_loss_is_the_labs_formula(teacher, student):
    from slmlab import distill

    (big, tokenizer), (small, _) = teacher, student
    phrase = "The thunder made the dog hide under the bed."
    cold, hot = (distill.temperature_view(big, small, tokenizer, phrase, t, alpha=0.5)
                 for t in (0.5, 8.0))
    for view in (cold, hot):
        assert sum(view["teacher"]) == pytest.approx(1) and sum(view["student"]) == pytest.approx(1)
        assert view["kd_loss"] == pytest.approx(0.5 * view["temperature_squared"] * view["kl"]
                                                + 0.5 * view["cross_entropy"], rel=1e-5)
    assert max(hot["teacher"]) < max(cold["teacher"]), "a higher T flattens the soft labels"
    assert max(hot["teacher"]) - min(hot["teacher"]) < 0.25


def test_the_temperature_slider_redraws_the_bars(teacher, student):
    (big, tokenizer), (small, _) = teacher, student
    explorer = widgets.temperature_explorer(big, small, tokenizer, ["I won!", "I lost."])
    slider, shown = explorer.children[0], explorer.children[-1]
    before = shown.value
    slider.value = 8.0
    assert shown.value != before and 'class="temperature-bars"' in shown.value
    assert "T² (64.00)" in shown.value


def test_nf4_block_snaps_each_weight_to_its_nearest_scaled_level():
    from slmlab import qlora

    weight = torch.randn(8, 64, generator=torch.Generator().manual_seed(0))
    view = qlora.nf4_block(weight, 3)
    assert view["weights"] == weight[3].tolist() and len(view["levels"]) == 16
    assert view["absmax"] == pytest.approx(weight[3].abs().max().item())
    for w, r in zip(view["weights"], view["rounded"], strict=True):
        nearest = min(view["levels"], key=lambda level: abs(level - w))
        assert r == pytest.approx(nearest, abs=1e-6)
    with pytest.raises(ValueError, match="outside"):
        qlora.nf4_block(weight, 8)


def test_bits_per_weight_with_and_without_double_quantization():
    from slmlab import qlora

    assert qlora.bits_per_weight(64, double_quant=False) == 4.5  # 4 + 32/64
    assert qlora.bits_per_weight(64) == pytest.approx(4.127, abs=1e-3)  # the QLoRA paper
    n = 256 * 64 * 10  # whole scale groups: the formula of four_bit_bytes, less the code book
    assert n * qlora.bits_per_weight(64) / 8 == qlora.four_bit_bytes(n) - 256 * 4


def test_the_nf4_explorer_follows_the_block_slider(teacher):
    model, _ = teacher
    explorer = widgets.nf4_explorer(model)
    picker, block, plot, figures = explorer.children
    assert "lm_head" not in picker.options and picker.value.startswith("model.layers.0.")
    assert block.max == model.get_submodule(picker.value).weight.numel() // 64 - 1
    before, picture = figures.value, plot.value
    block.value = 5
    assert figures.value != before and "bits per weight" in figures.value
    assert bytes(plot.value).startswith(b"\x89PNG") and bytes(plot.value) != bytes(picture)


def test_no_lab_widget_captures_output_in_an_output_widget():
    # under papermill an Output widget that receives output while a cell runs makes
    # nbclient write to the kernel's shell channel while it waits there for the cell's
    # reply, and the reply was then sometimes never read: lab 04 hung in `make course`
    import inspect

    assert "widgets.Output(" not in inspect.getsource(widgets)


@pytest.mark.slow
def test_one_onnx_base_answers_with_each_adapter_and_with_none(teacher, tmp_path):
    """Lab 06's switch on an adapter graph built here: with a zero LoRA B the adapter must
    change nothing, and without any adapter the base answers as it does alone."""
    import onnxruntime_genai as og
    from peft import get_peft_model

    model, tokenizer = teacher
    peft_model = get_peft_model(copy.deepcopy(model), presets.lora_config(4, 8))
    peft_model.save_pretrained(tmp_path / "adapter")  # B = 0 at initialisation
    built = export.build_onnx(zoo.resolve("tiny-phi3-teacher"), tmp_path / "onnx", "fp32",
                              adapter_path=tmp_path / "adapter")
    olive_pipeline.run_olive(["generate-adapter", "-m", str(built), "-o", str(tmp_path / "g"),
                              "--adapter_format", "onnx_adapter"], tmp_path / "g.log",
                             cwd=tmp_path)
    base = og.Model(str(tmp_path / "g"))
    adapters = og.Adapters(base)
    adapters.load(str(tmp_path / "g" / "adapter_weights.onnx_adapter"), "zero")
    answers = playground.adapter_answers(base, adapters, tokenizer, "I won the race!", ["zero"])
    assert list(answers) == ["zero", "no adapter"]
    assert answers["zero"]["answer"] == answers["no adapter"]["answer"]
    assert all(a["switch_ms"] >= 0 and a["total_ms"] > 0 for a in answers.values())
    page = widgets.adapter_switch(base, adapters, tokenizer, ["zero"])
    box, shown = page.children[0].children[0], page.children[-1]
    box.value = "The letter made me cry."
    assert 'class="adapter-answers"' in shown.value and "no adapter" in shown.value


def test_the_playground_times_decode_speed_after_the_first_token(monkeypatch):
    readings = iter([0.0, 1.0, 1.5, 2.0])   # the start, then one reading per piece
    monkeypatch.setattr(playground.time, "perf_counter", lambda: next(readings))
    figures = [so_far for _, so_far in playground.timed(iter(["a", "b", "c"]))]
    assert [f["tokens"] for f in figures] == [1, 2, 3] and figures[-1]["seconds"] == 2.0
    # the first token processes the prompt: two more tokens in the second after it
    assert figures[0]["tokens_per_s"] == 0.0 and figures[-1]["tokens_per_s"] == 2.0
