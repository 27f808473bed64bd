"""Lab 06's Olive helpers: the completion-only data step, the passes, the environment."""

import subprocess
import sys

import pytest

from slmlab import olive_pipeline, zoo
from slmlab.task import TEXT_TEMPLATE


def test_completion_only_example_masks_the_prompt_and_is_cut_not_padded():
    tokenizer = zoo.load_tokenizer("tiny-phi3-teacher")
    row = {"phrase": "I am glad.", "tone": "joy"}
    example = olive_pipeline.completion_only_example(tokenizer, row, max_seq_len=40)
    full = tokenizer(TEXT_TEMPLATE.format(**row), add_special_tokens=False)["input_ids"]
    assert example["input_ids"] == [*full, tokenizer.eos_token_id], "the whole text, then end"
    assert len(example["labels"]) == len(example["attention_mask"]) == len(full) + 1
    trained = [(i, t) for i, t in enumerate(example["labels"]) if t != olive_pipeline.IGNORE_INDEX]
    assert [t for _, t in trained] == [full[-1], tokenizer.eos_token_id]
    assert trained[0][0] == len(full) - 1, "the loss starts at the tone token"
    assert all(example["attention_mask"])
    cut = olive_pipeline.completion_only_example(tokenizer, row, max_seq_len=5)
    assert cut["input_ids"] == full[:5] and cut["labels"] == [olive_pipeline.IGNORE_INDEX] * 5


def test_lora_passes_chain_lora_merge_builder():
    passes = olive_pipeline.lora_passes(4, 10, pass_type="QLoRA")
    assert [p["type"] for p in passes.values()] == ["QLoRA", "MergeAdapterWeights",
                                                     "ModelBuilder"]
    assert passes["lora"]["alpha"] == 8 and passes["lora"]["training_args"]["max_steps"] == 10
    assert passes["builder"]["extra_options"]["hf_token"] == "false"


def test_olive_variables_need_the_builder_copy(tmp_path):
    with pytest.raises(FileNotFoundError, match="make setup"):
        olive_pipeline.olive_variables(tmp_path)
    (tmp_path / "onnxruntime_genai").mkdir()
    variables = olive_pipeline.olive_variables(tmp_path)
    assert variables["OLIVE_DISABLE_TELEMETRY"] == "1"
    assert variables["PYTHONPATH"].startswith(str(tmp_path))
    assert olive_pipeline.olive_env(tmp_path)["PATH"], "the environment, plus those variables"


def run_in_olive_env(code: str) -> subprocess.CompletedProcess:
    """`code` in a Python process with the environment every Olive command gets."""
    return subprocess.run([sys.executable, "-c", code], env=olive_pipeline.olive_env(),
                          capture_output=True, text=True, timeout=300)


# Olive's own opt-out comes after its heartbeat: outside CI (a learner's machine) the
# heartbeat reached the exporter, which kept each command waiting at exit. The probe builds
# Olive's telemetry without OTEL_SDK_DISABLED, then with it: the first shows the heartbeat is
# still sent, the second that the fix stops it.
HEARTBEAT_PROBE = (
    "import os\n"
    "from olive.telemetry.library import exporter\n"
    "from olive.telemetry.telemetry import _CI_ENV_VARS, Telemetry\n"
    "saved = {v: os.environ.pop(v) for v in _CI_ENV_VARS if v in os.environ}\n"
    "sent = []  # as on a learner's machine: Olive skips its heartbeat in CI\n"
    "export = exporter.OneCollectorLogExporter.export\n"
    "exporter.OneCollectorLogExporter.export = lambda self, batch: sent.extend(batch)\n"
    "for disabled in (None, os.environ.pop('OTEL_SDK_DISABLED')):\n"
    "    if disabled:\n"
    "        os.environ['OTEL_SDK_DISABLED'] = disabled\n"
    "    sent.clear()\n"
    "    Telemetry._instance = None  # a singleton: build it anew\n"
    "    Telemetry().shutdown()\n"
    "    print(f'OTEL_SDK_DISABLED={disabled}: {len(sent)} records exported')\n"
    "os.environ.update(saved)\n"
    "exporter.OneCollectorLogExporter.export = export\n")
# Olive waits at the end of every command (up to 2 s) until each event it logged is reported
# sent; with the exporter off, none is. Without slmlab.olive_offline one logged event stays
# pending (the bug the module works around); with it, none does.
PENDING_PROBE = (
    "from olive.telemetry.telemetry import Telemetry\n"
    "def pending_after_one_event():\n"
    "    Telemetry._instance = None  # a singleton: build it anew\n"
    "    telemetry = Telemetry()\n"
    "    telemetry.log('OliveAction', {'command': 'probe'})\n"
    "    return not telemetry._cache_handler.wait_for_callbacks(0)\n"
    "print(pending_after_one_event())\n"
    "import slmlab.olive_offline\n"
    "print(pending_after_one_event())\n")


@pytest.fixture(scope="module")
def telemetry_probes() -> tuple[list[str], subprocess.CompletedProcess]:
    """Both probes in one process (Olive's imports take seconds): their printed lines."""
    out = run_in_olive_env(HEARTBEAT_PROBE + "print('---')\n" + PENDING_PROBE)
    return out.stdout.splitlines(), out


def test_olive_sends_no_telemetry_with_its_environment(telemetry_probes):
    lines, out = telemetry_probes
    heartbeat = lines[:lines.index("---")] if "---" in lines else lines
    assert len(heartbeat) == 2, out.stdout + out.stderr[-2000:]
    assert not heartbeat[0].endswith(": 0 records exported"), \
        "the heartbeat no longer needs the fix"
    assert heartbeat[1] == "OTEL_SDK_DISABLED=true: 0 records exported", heartbeat


def test_olive_offline_leaves_no_telemetry_event_to_wait_for_at_exit(telemetry_probes):
    lines, out = telemetry_probes
    assert "---" in lines, out.stdout + out.stderr[-2000:]
    assert lines[lines.index("---") + 1:] == ["True", "False"], out.stdout + out.stderr[-2000:]


def test_the_installed_builder_copy_is_the_one_olive_expects():

    dist = next(olive_pipeline.BUILDER_DIR.glob("onnxruntime_genai-*.dist-info"))
    assert dist.name.startswith("onnxruntime_genai-0.14.1"), dist.name


def test_training_losses_reads_trainer_logs(tmp_path):
    log = tmp_path / "run.log"
    log.write_text("{'loss': '2.5', 'grad_norm': '1'}\nnoise\n{'loss': 0.75, 'epoch': 1}\n")
    assert olive_pipeline.training_losses(log) == [2.5, 0.75]


def test_olive_commands_run_offline_and_fail_in_one_line(tmp_path):
    from slmlab import tools

    seconds = olive_pipeline.run_olive(["--help"], tmp_path / "help.log", cwd=tmp_path)
    assert "usage" in (tmp_path / "help.log").read_text() and seconds > 0
    with pytest.raises(tools.ToolError) as failed:
        olive_pipeline.run_olive(["no-such-command"], tmp_path / "bad.log", cwd=tmp_path)
    assert str(failed.value).startswith("olive no-such-command failed (exit 2): ")
    assert str(failed.value).endswith(f"(log {tmp_path / 'bad.log'})")


def test_olive_runs_with_the_builder_copy_first_on_its_path(tmp_path):
    """Olive's ModelBuilder pass needs onnxruntime-genai 0.14.1's builder; the course's
    kernels import 0.18: a command sees the copy, its caller keeps its own."""
    import onnxruntime_genai

    from slmlab import tools

    (tmp_path / "which.py").write_text(
        "import onnxruntime_genai, os\nprint(onnxruntime_genai.__file__)\n")
    tools.run_python([sys.executable, "-m", "which"], tmp_path / "which.log", "which",
                     variables=olive_pipeline.olive_variables(),
                     python_path=(str(olive_pipeline.BUILDER_DIR), str(tmp_path)))
    seen = (tmp_path / "which.log").read_text().strip()
    assert seen.startswith(str(olive_pipeline.BUILDER_DIR)), seen
    assert not onnxruntime_genai.__file__.startswith(str(olive_pipeline.BUILDER_DIR))
