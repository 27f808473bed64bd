"""`make checkpoint LAB=NN` builds what a lab needs from earlier labs: lab 03's adapter."""

import inspect
import json

import pytest

from slmlab import REPO_ROOT, sft
from slmlab.course import checkpoint


@pytest.mark.parametrize("lab", sorted(checkpoint.ADAPTER_ARGUMENTS))
def test_labs_that_reuse_lab_03s_adapter_ask_for_its_recipe_with_the_names_their_call_uses(lab):
    settings = checkpoint.adapter_settings(lab)
    defaults = {name: p.default for name, p in
                inspect.signature(sft.train_adapter).parameters.items()}
    lab03 = checkpoint.lab_defaults("03_peft_lora_sft", REPO_ROOT / "solutions")
    assert settings["model_id"] == lab03["model_id"]
    assert (settings.get("r", defaults["r"]), settings["max_steps"], settings["seed"]) == (
        lab03["rank"], lab03["max_steps"], lab03["seed"])
    assert settings.get("learning_rate", defaults["learning_rate"]) == lab03["learning_rate"]
    # the lab's own call passes the same parameters: else the cache key would differ
    cells = json.loads((REPO_ROOT / "solutions" / f"{lab}.ipynb").read_text())["cells"]
    call = next("".join(c["source"]) for c in cells if "sft.train_adapter(" in "".join(c["source"]))
    call = call.split("sft.train_adapter(", 1)[1].split(")", 1)[0]
    call = call.replace(" ", "").replace("\n", "")
    arguments = dict(checkpoint.ADAPTER_ARGUMENTS[lab])
    assert call.split(",")[0] == arguments.pop("model_id"), "the model comes first, by position"
    for argument, name in arguments.items():
        assert f"{argument}={name}" in call


@pytest.mark.slow
def test_checkpoint_trains_once_and_the_lab_then_loads_it(tmp_path, monkeypatch):
    real_defaults = checkpoint.lab_defaults
    monkeypatch.setattr(checkpoint, "lab_defaults",  # two steps instead of the lab's 150
                        lambda *args: real_defaults(*args) | {"train_steps": 2})
    assert "trained in" in checkpoint.build("05", cache_dir=tmp_path)
    assert checkpoint.build("5", cache_dir=tmp_path).endswith("was already in the cache")
    _, _, info = sft.train_adapter(**checkpoint.adapter_settings("05"), cache_dir=tmp_path)
    assert info["source"].startswith("cache")   # what lab 05's own call now finds


def test_other_labs_need_nothing_and_an_unknown_lab_names_the_labs():
    assert "needs nothing from earlier labs" in checkpoint.build("08")
    with pytest.raises(SystemExit, match="no lab '42': use one of 00, 01, 02"):
        checkpoint.notebook_of("42")
