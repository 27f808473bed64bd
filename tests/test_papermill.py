"""Labs run with non-default parameters through papermill, as `make course` runs them."""

import json

from slmlab import REPO_ROOT
from slmlab.course.runner import run_lab


def test_lab00_with_the_student_and_fewer_tokens(tmp_path):
    run_lab(REPO_ROOT / "labs" / "00_setup_tour.ipynb", runs_dir=tmp_path,
            model_id="tiny-phi3-student", max_new_tokens=6, question="Tell me about trains.")
    metrics = json.loads((tmp_path / "00_setup_tour" / "metrics.json").read_text())
    assert metrics["model_id"] == "tiny-phi3-student"
    assert 100_000 < metrics["parameters"] < 1_000_000
    assert metrics["generation_tokens_per_second"] > 0
    assert (tmp_path / "00_setup_tour" / "00_setup_tour.ipynb").exists()
