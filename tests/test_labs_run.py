"""Every notebook in labs/ runs end to end, with its TODO scaffolds untouched.

labs/ differ from solutions/ only in the exercise blocks (test_exercises checks that labs/
are generated from solutions/), and nbval executes every solution with its defaults and
headline asserts. Here each lab runs once through papermill, as `make course` runs it,
with `course.QUICK_PARAMETERS`: a few training steps, so the headline targets are reported
rather than asserted (as for any learner's run off the defaults). What this proves: every
cell executes, each unfinished exercise falls back to the reference and says so, a run
with other parameters finishes, and the lab writes its metrics.json.
"""

import json
import re

import nbformat
import papermill
import pytest

from slmlab import REPO_ROOT, qlora
from slmlab.course.runner import QUICK_PARAMETERS, run_lab

LABS = sorted((REPO_ROOT / "labs").glob("[0-9][0-9]_*.ipynb"))


def test_every_lab_has_quick_parameters_it_declares():
    assert {lab.stem for lab in LABS} == set(QUICK_PARAMETERS)
    for lab in LABS:
        notebook = nbformat.read(lab, as_version=4)
        parameters = next(c.source for c in notebook.cells
                          if "parameters" in c.metadata.get("tags", []))
        for name in QUICK_PARAMETERS[lab.stem]:
            assert f"\n{name} =" in f"\n{parameters}", f"{lab.name} has no parameter {name}"


# Labs whose 4-bit sections have a documented fallback. Their solutions run the 4-bit path
# under nbval; here they run as on a machine where bitsandbytes' 4 bit does not work.
FOUR_BIT_LABS = {"04_qlora": "QLoRA training skipped", "06_olive_pipeline":
                 "QLoRA through Olive skipped", "08_peft_methods_compared": "QLoRA row skipped"}


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS, ids=[lab.stem for lab in LABS])
def test_lab_runs_end_to_end_with_its_scaffolds(lab, tmp_path, monkeypatch):
    if lab.stem in FOUR_BIT_LABS:  # the lab's kernel inherits the variable
        monkeypatch.setenv(qlora.NO_4BIT_VARIABLE, "1")
    executed = run_lab(lab, runs_dir=tmp_path, **QUICK_PARAMETERS[lab.stem])
    metrics = json.loads((executed.parent / "metrics.json").read_text())
    assert metrics, "the lab wrote its headline figures"
    # every headline target reported as met or missed, never failed on (other parameters)
    assert metrics["targets"] and all(set(t) == {"claim", "target", "measured", "met"}
                                      for t in metrics["targets"])
    notebook = nbformat.read(executed, as_version=4)
    printed = "".join(output.get("text", "") for cell in notebook.cells
                      for output in cell.get("outputs", []))
    scaffolds = sum(len(re.findall(r"todo\(['\"]", cell.source)) for cell in notebook.cells
                    if cell.cell_type == "code")
    assert scaffolds, f"{lab.name} has no exercise scaffold"
    # each unfinished exercise said so and the lab went on with the reference
    assert 1 <= printed.count("not done yet") <= scaffolds, printed[-2000:]
    if lab.stem != "00_setup_tour":  # off the defaults: targets reported, never failed on
        assert "Headline targets: reported, not asserted: this run changes" in printed
    if lab.stem in FOUR_BIT_LABS:
        assert "NOT AVAILABLE" in printed and FOUR_BIT_LABS[lab.stem] in printed
        assert metrics["four_bit_available"] is False
    if lab.stem == "04_qlora":
        assert not metrics["memory_figures_measured"] and metrics["accuracy_gap_points"] is None
        assert list(metrics["runs"]) == ["LoRA, fp32 base"]
        assert metrics["linear_memory_ratio"] > 1  # from the byte formula, labelled as such
    if lab.stem == "02_loralib_layer_swaps":  # train_choices: every choice trained, scored
        choices = metrics["projection_choices"]  # three projection sets, and lora.Embedding
        assert len(choices) == 4 and all(0 <= c["accuracy"] <= 1 for c in choices.values())
    if lab.stem == "06_olive_pipeline":
        assert metrics["qlora_accuracy_onnx_int4"] is None
    if lab.stem == "08_peft_methods_compared":
        assert not any(name.startswith("QLoRA") for name in metrics["methods"])


@pytest.mark.slow
def test_a_mistyped_parameter_stops_the_lab_in_its_first_code_cell(tmp_path):
    # papermill's `-p compare_ranks "[]"` passes the text "[]"
    with pytest.raises(papermill.PapermillExecutionError) as raised:
        run_lab(REPO_ROOT / "labs" / "03_peft_lora_sft.ipynb", runs_dir=tmp_path,
                compare_ranks="[]")
    error = raised.value
    assert error.ename == "ParameterError"
    assert error.evalue.startswith("03_peft_lora_sft: parameter compare_ranks = '[]' must be")
    executed = nbformat.read(tmp_path / "03_peft_lora_sft" / "03_peft_lora_sft.ipynb", 4)
    ran = [c for c in executed.cells if c.cell_type == "code" and c.get("execution_count")]
    assert "check_parameters(" in ran[-1].source, "it stopped before any work was done"
