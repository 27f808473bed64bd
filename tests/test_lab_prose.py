"""Lab prose stays a lesson: short enough to read around the code, with links that resolve.

A word is any whitespace-separated token of a markdown cell's source, headings, formulas
and list marks included: the plainest count, so no way of counting finds more.
"""

import json
import re
from pathlib import Path

import pytest

from slmlab import REPO_ROOT

MAX_LAB_WORDS = 800     # all markdown cells of one lab
MAX_CELL_WORDS = 150    # one markdown cell
NOTEBOOKS = sorted([*(REPO_ROOT / "solutions").glob("*.ipynb"),
                    *(REPO_ROOT / "labs").glob("*.ipynb")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def words(text: str) -> int:
    return len(text.split())


def markdown_cells(path: Path) -> list[tuple[str, str]]:
    """(cell id, source) of every markdown cell."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [(cell.get("id", str(index)), "".join(cell["source"]))
            for index, cell in enumerate(cells) if cell["cell_type"] == "markdown"]


def test_words_counts_every_token():
    assert words("## Checks\n\n- Latency falls — 3× lower → good") == 10


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_lab_has_at_most_800_words_of_markdown(path):
    total = sum(words(source) for _, source in markdown_cells(path))
    assert total <= MAX_LAB_WORDS, f"{path.name}: {total} words of markdown"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_markdown_cell_has_more_than_150_words(path):
    long = {cell_id: words(source) for cell_id, source in markdown_cells(path)
            if words(source) > MAX_CELL_WORDS}
    assert not long, f"{path.name}: cells over {MAX_CELL_WORDS} words: {long}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_relative_links_in_lab_prose_resolve(path):
    broken = [target for _, source in markdown_cells(path) for target in LINK.findall(source)
              if not re.match(r"[a-z]+:|#", target)
              and not (path.parent / target.split("#", 1)[0]).exists()]
    assert not broken, f"{path.name} links to missing files: {broken}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_labs_time_line_comes_from_the_course_map(path):
    # one source for the labs, README's course map and the instructor's guide
    from slmlab.course import course_map

    expected = course_map.time_line(path.stem)
    first = markdown_cells(path)[0][1]
    assert expected in first.splitlines(), (
        f"{path.name}: its first cell should say {expected!r} (slmlab.course.course_map); "
        "edit the solution and run `make labs`")
