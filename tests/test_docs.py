"""The docs hold together: links resolve, named commands exist, generated tables are current,
and product files speak of the product as it is (no development-process words)."""

import json
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

from slmlab import REPO_ROOT, results
from slmlab.course import results_page

README = REPO_ROOT / "README.md"
MAKEFILE = (REPO_ROOT / "Makefile").read_text()
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# Patterns of a development log, not of a product. Each is written so that its own source
# text does not match it.
PROCESS_WORDS = {
    "development round": re.compile(r"\bstops?\s\d+", re.IGNORECASE),
    "development round's": re.compile(r"\bstop['’]s\b", re.IGNORECASE),
    "this round": re.compile(r"\bthis\s+stop\b", re.IGNORECASE),
    # a commit id: 7-40 lowercase hex with at least one digit and one letter
    "commit id": re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b"),
    # a clock time, hh:mm (not a slice [10:20], a ratio 1:1, a port or a timestamp)
    "clock time": re.compile(r"(?<![\w\[:.-])(?:[01]?\d|2[0-3]):[0-5]\d(?![\d:\]])"),
}


def tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", "--", *patterns], cwd=REPO_ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
    return [REPO_ROOT / p for p in out if (REPO_ROOT / p).exists()]


def product_files() -> list[Path]:
    """README, docs, notebooks, the package, the tests, the Makefile and the data and model
    cards; data files (.json, .jsonl, weights) are measurements, not prose."""
    files = tracked("README.md", "Makefile", "conftest.py", "docs", "labs", "solutions", "lib",
                    "tests", "models/*.md", "data/*.md")
    return [f for f in files if f.suffix in {".md", ".py", ".ipynb", ""}]


def readable_text(path: Path) -> str:
    """A notebook's cell sources (not its ids or metadata); any other file as it is."""
    if path.suffix != ".ipynb":
        return path.read_text(encoding="utf-8")
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(cell["source"]) for cell in cells)


def markdown_files() -> list[Path]:
    return [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue   # a web address, or a heading on the same page
        path = unquote(target.split("#", 1)[0])
        if not (page.parent / path).exists():
            broken.append(target)
    assert not broken, f"{page.name} links to missing files: {broken}"


def test_every_make_target_the_readme_names_exists():
    targets = set(re.findall(r"^([a-z][\w-]*):", MAKEFILE, flags=re.M))
    named = set(re.findall(r"\bmake ([a-z][\w-]*)", README.read_text()))
    assert named and not named - targets, f"README names missing targets: {named - targets}"


def test_readme_is_at_most_200_lines():
    assert len(README.read_text().splitlines()) <= 200


@pytest.mark.parametrize("page, prefix", [(README, ""),
                                          (REPO_ROOT / "docs" / "instructor_guide.md", "../")],
                         ids=["README", "instructor_guide"])
def test_generated_tables_equal_what_make_results_renders(page, prefix):
    text = page.read_text(encoding="utf-8")
    assert "<!-- course-map:begin -->" in text
    assert results_page.render_blocks(text, results.load(), prefix) == text, (
        f"{page.name}: a generated table differs from docs/results.json: run `make results`")


def test_the_results_page_is_current():
    page = REPO_ROOT / "docs" / "results.md"
    assert page.read_text(encoding="utf-8") == results_page.render_page(results.load()), (
        "docs/results.md differs from docs/results.json: run `make results`")


def process_words(text: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        found += [f"{number}: {kind}: {m.group(0)!r} in {line.strip()[:90]!r}"
                  for kind, pattern in PROCESS_WORDS.items() for m in pattern.finditer(line)]
    return found


def test_the_process_word_patterns_catch_a_journal_and_spare_code():
    # assembled at run time, so that this file's own text stays clean
    stop, commit, clock = "stop", "a924" + "d45", "19" + ":45"
    journal = (f"Since {stop} 35 the recipe; this {stop}'s bench; {stop}s 28-31; fresh clone "
               f"of {commit} took 7.2 min at {clock}.")
    assert {hit.split(": ")[1] for hit in process_words(journal)} == set(PROCESS_WORDS)
    code = ('x = text[10:20]; ratio 1:1; port 127.0.0.1:8888; "2026-12-03T19:45:00"; '
            'sha 0x1f; deadbeef; version 0.18; a stop to it; 3:2 aspect; steps 150')
    assert process_words(code) == []


@pytest.mark.parametrize("path", product_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_product_files_have_no_development_process_words(path):
    hits = process_words(readable_text(path))
    assert not hits, f"{path.relative_to(REPO_ROOT)}:\n" + "\n".join(hits)
