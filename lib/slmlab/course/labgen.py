"""Generates the exercise notebooks in `labs/` from the complete ones in `solutions/`.

Each block between `# BEGIN SOLUTION: <hint>` and `# END SOLUTION` (inside a function)
becomes a TODO scaffold that calls `todo(hint)`; the lab's check cell then falls back to
the reference, so the generated lab still runs end to end. Outputs are stripped.
`python -m slmlab.course.labgen` writes labs/; with `--check` it lists stale ones.
"""

import re
import sys
from pathlib import Path

import nbformat

from slmlab import REPO_ROOT

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION(?::\s*(?P<hint>.*))?$")
END = re.compile(r"^[ \t]*# END SOLUTION\s*$")


def scaffold_source(source: str, where: str = "cell") -> str:
    """The cell source with every solution block replaced by a TODO scaffold."""
    out, inside = [], False
    for number, line in enumerate(source.splitlines(), start=1):
        begin = BEGIN.match(line)
        if begin:
            if inside:
                raise ValueError(f"{where}:{number}: nested BEGIN SOLUTION")
            indent, hint = begin["indent"], (begin["hint"] or "complete this").strip()
            if not indent:
                raise ValueError(f"{where}:{number}: solution blocks must sit inside a function")
            out += [f"{indent}# TODO: {hint}", f"{indent}todo({hint!r})"]
            inside = True
        elif END.match(line):
            if not inside:
                raise ValueError(f"{where}:{number}: END SOLUTION without BEGIN")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: BEGIN SOLUTION is never closed")
    return "\n".join(out)


def strip_outputs(notebook) -> None:
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
    notebook.metadata.pop("papermill", None)


def lab_from_solution(path: Path):
    """The generated lab notebook (a NotebookNode) for one solution notebook."""
    notebook = nbformat.read(path, as_version=4)
    strip_outputs(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            cell.source = scaffold_source(cell.source, f"{path.name} cell {index}")
    return notebook


def generate(solutions: Path = REPO_ROOT / "solutions", labs: Path = REPO_ROOT / "labs",
             check_only: bool = False) -> list[str]:
    """Write (or, with `check_only`, compare) every lab; return the stale lab names."""
    stale = []
    expected_names = set()
    for solution in sorted(solutions.glob("*.ipynb")):
        expected_names.add(solution.name)
        text = nbformat.writes(lab_from_solution(solution)) + "\n"
        target = labs / solution.name
        if not target.exists() or target.read_text() != text:
            stale.append(solution.name)
            if not check_only:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
    stale += sorted(p.name for p in labs.glob("*.ipynb") if p.name not in expected_names)
    return stale


if __name__ == "__main__":
    check = "--check" in sys.argv
    names = generate(check_only=check)
    if check and names:
        sys.exit("stale labs (run `make labs`): " + ", ".join(names))
    print(("stale: " if check else "regenerated: ") + (", ".join(names) or "none"))
