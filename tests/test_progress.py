"""The learner's self-check: each run records its exercises; `make progress` tabulates them."""

import json
import os
import shutil

import nbformat
import pytest

from slmlab import REPO_ROOT, exercises, progress
from slmlab.course.runner import run_labs

LAB00 = REPO_ROOT / "labs" / "00_setup_tour.ipynb"
SCAFFOLD = '    todo("frame every turn the same way, then open the assistant\'s turn")'
RIGHT = ('    turns = "".join(f"<|{m[\'role\']}|>\\n{m[\'content\']}<|end|>\\n"\n'
         '                    for m in messages)\n'
         '    return turns + "<|assistant|>\\n"')
WRONG = ('    return "".join(f"<|user|>\\n{m[\'content\']}<|end|>\\n" for m in messages) '
         '+ "<|assistant|>\\n"')


def test_check_records_each_outcome(tmp_path, monkeypatch):
    monkeypatch.setitem(exercises.RECORD, "path", None)
    path = exercises.record_to(tmp_path)
    assert json.loads(path.read_text()) == []

    def unfinished(x):
        exercises.todo("double it")

    exercises.check("double", lambda x: 2 * x, lambda x: 2 * x, [(1,)])
    exercises.check("triple", unfinished, lambda x: 3 * x, [(1,)])
    with pytest.raises(AssertionError):
        exercises.check("square", lambda x: x + x, lambda x: x * x, [(3,)], hint="x times x")
    assert json.loads(path.read_text()) == [
        {"exercise": "double", "status": "done", "message": ""},
        {"exercise": "triple", "status": "not started", "message": ""},
        {"exercise": "square", "status": "wrong",
         "message": "✗ square(3) returned 6, expected 9 — x times x"}]


def test_every_lab_declares_its_exercises():
    for lab in sorted((REPO_ROOT / "labs").glob("[0-9][0-9]_*.ipynb")):
        assert progress.lab_exercises(lab), f"{lab.name}: no check(...) found"
    assert progress.lab_exercises(LAB00) == ["render_chat"]


def test_labs_edited_since_their_run_are_the_ones_rerun(tmp_path):
    labs, runs = tmp_path / "labs", tmp_path / "runs"
    labs.mkdir()
    for name in ("00_a", "01_b", "02_c"):
        shutil.copy(LAB00, labs / f"{name}.ipynb")
    for name in ("00_a", "01_b"):
        (runs / name).mkdir(parents=True)
        (runs / name / "exercises.json").write_text("[]")
    ran = (runs / "01_b" / "exercises.json").stat().st_mtime
    os.utime(labs / "01_b.ipynb", (ran + 60, ran + 60))  # edited a minute after its run
    assert [p.stem for p in progress.changed_labs(labs, runs)] == ["01_b", "02_c"]


@pytest.mark.slow
def test_one_solved_one_wrong_the_rest_untouched_gives_that_table(tmp_path):
    labs, runs = tmp_path / "labs", tmp_path / "runs"
    labs.mkdir()
    source = LAB00.read_text()
    assert source.count(json.dumps(SCAFFOLD)[1:-1]) == 1
    variants = {"00_setup_tour": RIGHT, "01_wrong": WRONG, "02_untouched": SCAFFOLD}
    for name, body in variants.items():
        notebook = nbformat.reads(source, 4)
        for cell in notebook.cells:
            cell.source = cell.source.replace(SCAFFOLD, body)
        nbformat.write(notebook, labs / f"{name}.ipynb")
    shutil.copy(REPO_ROOT / "labs" / "03_peft_lora_sft.ipynb", labs)  # never run
    _, failed = run_labs(sorted(labs.glob("0[012]_*.ipynb")), runs, tolerate=(Exception,))
    assert failed == ["01_wrong"], "a wrong answer stops its lab"
    lines = progress.table(progress.collect(labs, runs)).splitlines()
    assert lines[1:5] == [
        "00_setup_tour                   1     0           0       0",
        "01_wrong                        0     1           0       0",
        "02_untouched                    0     0           1       0",
        "03_peft_lora_sft                0     0           0       2"]
    assert lines[5].startswith("  01_wrong / render_chat: ✗ render_chat(")
    assert lines[5].endswith("whatever its role") and len(lines) == 6
    page = progress.page(progress.collect(labs, runs))
    assert page.count("<tr>") == 5 and "&lt;|user|&gt;" in page
