import json
import os
import socket
import subprocess
import sys
import time

import pytest
import torch
from transformers import Phi3ForCausalLM

from slmlab import MODELS_DIR, zoo
from slmlab.corpus import make_corpus
from slmlab.lexicon import TONES
from slmlab.metrics import count_parameters, perplexity
from slmlab.pretrain import HELDOUT_SEED, build_zoo, token_stream
from slmlab.task import label_token_ids


def test_zoo_models_are_phi3_with_real_module_names(teacher, student):
    for model, _ in (teacher, student):
        assert isinstance(model, Phi3ForCausalLM) and model.config.model_type == "phi3"
        names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        assert {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"} <= names


def test_student_is_at_most_a_fifth_of_the_teacher(teacher, student):
    assert count_parameters(student[0]) * 5 <= count_parameters(teacher[0])


def test_files_are_hugging_face_format():
    for name in zoo.ZOO:
        files = {p.name for p in (MODELS_DIR / name).iterdir()}
        assert {"config.json", "model.safetensors", "tokenizer.json",
                "tokenizer_config.json"} <= files, files
        assert json.loads((MODELS_DIR / name / "config.json").read_text())["model_type"] == "phi3"


def test_tokenizer_has_phi3_specials_and_chat_template(teacher):
    _, tokenizer = teacher
    for token in ("<|user|>", "<|assistant|>", "<|end|>", "<|endoftext|>"):
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1, token
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        tokenize=False)
    assert chat == "<|user|>\nhi<|end|>\n<|assistant|>\nhello<|end|>\n<|endoftext|>"
    assert len(set(label_token_ids(tokenizer).values())) == len(TONES)


def test_pretrained_models_beat_untrained_ones_by_far(teacher, student):
    _, tokenizer = teacher
    heldout = token_stream(tokenizer, make_corpus(100, HELDOUT_SEED))
    for model, _ in (teacher, student):
        torch.manual_seed(0)
        untrained = Phi3ForCausalLM(model.config)
        trained_ppl, untrained_ppl = perplexity(model, heldout), perplexity(untrained, heldout)
        assert trained_ppl < 10 and untrained_ppl > 10 * trained_ppl, (trained_ppl, untrained_ppl)


def test_shipped_weights_match_the_zoo_card():
    from slmlab.pretrain import weights_sha256

    card = json.loads((MODELS_DIR / "zoo_card.json").read_text())
    for name in zoo.ZOO:
        assert weights_sha256(MODELS_DIR / name) == card[name]["weights_sha256"]


def test_build_is_deterministic(tmp_path):
    steps = {name: 3 for name in zoo.ZOO}
    threads = torch.get_num_threads()
    first = build_zoo(tmp_path / "a", steps=steps, n_documents=300, n_heldout=30)
    second = build_zoo(tmp_path / "b", steps=steps, n_documents=300, n_heldout=30)
    for name in zoo.ZOO:
        assert first[name]["weights_sha256"] == second[name]["weights_sha256"]
    assert (tmp_path / "a" / "tiny-phi3-student" / "config.json").exists()
    # the build runs on 2 threads (for the hash) and gives the caller its setting back
    assert torch.get_num_threads() == threads


def test_load_accepts_a_local_directory():
    model, tokenizer = zoo.load(MODELS_DIR / "tiny-phi3-student")
    assert model.config.model_type == "phi3" and len(tokenizer) == model.config.vocab_size


@pytest.mark.parametrize("bad, error", [
    (42, TypeError),
    ("no-such-model", zoo.ModelNotAvailable),
    ("./missing/dir", zoo.ModelNotAvailable),
])
def test_bad_model_ids_fail_clearly(bad, error):
    with pytest.raises(error):
        zoo.resolve(bad)


def hub_reachable() -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("offline_flag", ["1", None], ids=["HF_HUB_OFFLINE", "no-network"])
def test_hub_id_offline_fails_with_one_line_naming_the_zoo(offline_flag):
    # a fresh interpreter, as a learner would see it: one line, no library traceback
    code = ("from slmlab import zoo\n"
            "try:\n    zoo.load('microsoft/Phi-3-mini-4k-instruct')\n"
            "except zoo.ModelNotAvailable as e:\n    print(e)")
    if offline_flag is None and hub_reachable():
        pytest.skip("the hub is reachable from here: this case is for offline machines")
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    if offline_flag:
        env["HF_HUB_OFFLINE"] = offline_flag
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=env)
    message = out.stdout.strip()
    assert "\n" not in message and "tiny-phi3-teacher" in message, out
    assert "Phi-3-mini-4k-instruct" in message
    assert time.perf_counter() - start < 60
