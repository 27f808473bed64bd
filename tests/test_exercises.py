import json
import re

import nbformat
import pytest
import torch

from slmlab import REPO_ROOT, labgen
from slmlab.exercises import check, todo

SOLUTIONS = sorted((REPO_ROOT / "solutions").glob("*.ipynb"))


def test_check_returns_the_solution_when_right(capsys):
    square = check("square", lambda x: x * x, lambda x: x ** 2, cases=[(2,), (3.0,)])
    assert square(4) == 16 and "✓" in capsys.readouterr().out


def test_check_falls_back_to_the_reference_when_not_done(capsys):
    def unfinished(x):
        todo("square x")

    def reference(x):
        return x * x

    assert check("square", unfinished, reference, cases=[(2,)]) is reference
    assert "not done yet" in capsys.readouterr().out


def test_check_fails_loudly_when_wrong():
    with pytest.raises(AssertionError, match="expected 4"):
        check("square", lambda x: x + x + 1, lambda x: x * x, cases=[(2,)])
    with pytest.raises(AssertionError):
        check("t", lambda: torch.zeros(2), lambda: torch.ones(2), cases=[()])


def test_scaffold_replaces_blocks_and_keeps_the_rest():
    source = ("def f(x):\n"
              "    y = 1\n"
              "    # BEGIN SOLUTION: add one\n"
              "    return x + y\n"
              "    # END SOLUTION\n"
              "print(f)")
    assert labgen.scaffold_source(source) == (
        "def f(x):\n    y = 1\n    # TODO: add one\n    todo('add one')\nprint(f)")


@pytest.mark.parametrize("source", [
    "# BEGIN SOLUTION\nx = 1\n# END SOLUTION",          # not inside a function
    "def f():\n    # BEGIN SOLUTION\n    return 1",      # never closed
    "def f():\n    return 1\n    # END SOLUTION",        # no BEGIN
])
def test_malformed_blocks_are_rejected(source):
    with pytest.raises(ValueError):
        labgen.scaffold_source(source)


def test_labs_are_up_to_date_with_solutions():
    assert labgen.generate(check_only=True) == [], "labs/ is stale: run `make labs`"


def test_generation_detects_a_stale_lab(tmp_path):
    (tmp_path / "labs").mkdir()
    (tmp_path / "solutions").mkdir()
    source = SOLUTIONS[0]
    (tmp_path / "solutions" / source.name).write_text(source.read_text())
    assert labgen.generate(tmp_path / "solutions", tmp_path / "labs") == [source.name]
    assert labgen.generate(tmp_path / "solutions", tmp_path / "labs", check_only=True) == []
    lab = tmp_path / "labs" / source.name
    lab.write_text(lab.read_text().replace("Lab 00", "Lab 0O"))
    assert labgen.generate(tmp_path / "solutions", tmp_path / "labs", check_only=True)


@pytest.mark.parametrize("path", SOLUTIONS + sorted((REPO_ROOT / "labs").glob("*.ipynb")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_conventions(path):
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "outputs not stripped"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for name in ("seed", "output_dir", r"\w*_id"):  # model_id, or teacher_id / student_id
        assert re.search(rf"^{name} = ", tagged[0].source, flags=re.M), name
    sources = "\n".join(c.source for c in code)
    assert "pip install" not in sources and "metrics.json" in sources
    assert "check(" in sources, "every lab has at least one checked exercise"
    if path.parent.name == "solutions":
        assert "# BEGIN SOLUTION" in sources
    else:
        assert "# BEGIN SOLUTION" not in sources and "todo(" in sources
    json.dumps(notebook)  # serialisable, no stray objects


def _rejected_with(name, wrong, reference, cases, hint, expected_words):
    with pytest.raises(AssertionError) as raised:
        check(name, wrong, reference, cases, hint=hint)
    assert all(word in str(raised.value) for word in expected_words), str(raised.value)


def test_a_kd_loss_with_the_wrong_reduction_is_rejected_with_a_useful_hint():
    import torch.nn.functional as F

    from slmlab.distill import kd_loss

    def mean_reduction(label_logits, logits, teacher_probs, targets, temperature, alpha):
        soft = F.kl_div(F.log_softmax(label_logits / temperature, -1), teacher_probs,
                        reduction="mean")
        return alpha * temperature**2 * soft + (1 - alpha) * F.cross_entropy(logits, targets)

    generator = torch.Generator().manual_seed(0)
    case = (torch.randn(5, 4, generator=generator), torch.randn(5, 30, generator=generator),
            torch.softmax(torch.randn(5, 4, generator=generator), -1),
            torch.randint(0, 30, (5,), generator=generator), 2.0, 0.5)
    # the lab's own hint text: read it from the notebook so the test tracks what learners see
    notebook = (REPO_ROOT / "solutions" / "01_distillation.ipynb").read_text()
    assert "reduction='batchmean'" in notebook
    _rejected_with("kd_loss", mean_reduction, kd_loss, [case],
                   "check the KL term: reduction='batchmean'", ["kd_loss", "batchmean"])


def test_softening_without_the_temperature_is_rejected():
    from slmlab.distill import soften

    logits = torch.tensor([[2.0, 0.5, -1.0, 0.0]])
    with pytest.raises(AssertionError, match="soften"):
        check("soften", lambda x, t: torch.softmax(x, -1), soften, [(logits, 2.0)])


def test_a_merge_without_the_lora_scale_is_rejected_with_its_hint():
    from slmlab.export import merged_weight

    generator = torch.Generator().manual_seed(0)
    case = (torch.randn(6, 4, generator=generator), torch.randn(2, 4, generator=generator),
            torch.randn(6, 2, generator=generator), 4, 2)
    _rejected_with("merge_weight", lambda w, a, b, alpha, r: w + b @ a, merged_weight, [case],
                   "the update is scaled by alpha / r", ["merge_weight", "alpha / r"])
    assert torch.allclose(merged_weight(*case), case[0] + 2 * case[2] @ case[1])


def test_a_chat_template_that_only_knows_user_turns_is_rejected(student):
    _, tokenizer = student

    def user_only(messages):  # the one-turn answer printed above the exercise, generalized wrongly
        return "".join(f"<|user|>\n{m['content']}<|end|>\n" for m in messages) + "<|assistant|>\n"

    def reference(messages):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    conversation = [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi?"}]
    _rejected_with("render_chat", user_only, reference, [(conversation,)],
                   "every turn ends with <|end|> and a newline, whatever its role",
                   ["render_chat", "<|system|>", "whatever its role"])
