"""The package's module maps, generated from its imports: `slmlab/__init__.py` lists the
learner zone, `slmlab/course/__init__.py` the machinery. `python -m
slmlab.course.module_map` rewrites both; `tests/test_structure.py` fails when either is
stale, when the learner zone imports the machinery, or when the imports form a cycle.

A module's layer is one more than the highest layer among the modules it imports from the
package (0: none), so a reader can start at layer 0 and never meet a name not yet read.
"""

import ast
import re
import textwrap
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
MACHINERY = "course"
MAP_HEADING = "Module map"
LINE_WIDTH = 100  # ruff's
# a module named in a string (`python -m slmlab.olive_offline` runs it), not imported
NAMED = re.compile(r"\bslmlab\.([a-z_]+(?:\.[a-z_]+)?)\b")


def modules() -> dict[str, Path]:
    """Every module of the package by its name below `slmlab` ("sft", "course.runner")."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] != "__init__" and parts[-1] != "__main__":
            found[".".join(parts)] = path
    return found


def _resolve(dotted: str, known: dict[str, Path]) -> str | None:
    """The module `slmlab.<dotted>` names (or the module of a name inside it), if any."""
    while dotted:
        if dotted in known:
            return dotted
        dotted = dotted.rpartition(".")[0]
    return None


def references(source: str, known: dict[str, Path]) -> set[str]:
    """The package's modules that `source` imports (at any depth, in functions too)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and (node.module == "slmlab" or node.module.startswith("slmlab.")):
            base = node.module.removeprefix("slmlab").lstrip(".")
            for alias in node.names:
                name = _resolve(f"{base}.{alias.name}".lstrip("."), known) \
                    or _resolve(base, known)
                if name:
                    found.add(name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("slmlab."):
                    name = _resolve(alias.name.removeprefix("slmlab."), known)
                    if name:
                        found.add(name)
    return found


def named_in_strings(source: str, known: dict[str, Path]) -> set[str]:
    """Modules a source names as `slmlab.X` in a string (a `python -m` command)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for dotted in NAMED.findall(node.value):
                name = _resolve(dotted, known)
                if name:
                    found.add(name)
    return found


def imports() -> dict[str, set[str]]:
    """Each module and the package's modules it imports (itself left out)."""
    known = modules()
    return {name: references(path.read_text(), known) - {name} for name, path in known.items()}


def layers(graph: dict[str, set[str]]) -> dict[str, int]:
    """Each module's layer; ValueError naming the modules of a cycle."""
    layer: dict[str, int] = {}
    visiting: list[str] = []

    def visit(name: str) -> int:
        if name in layer:
            return layer[name]
        if name in visiting:
            raise ValueError("import cycle: " + " -> ".join(visiting[visiting.index(name):]
                                                            + [name]))
        visiting.append(name)
        layer[name] = 1 + max((visit(d) for d in graph[name]), default=-1)
        visiting.pop()
        return layer[name]

    for name in graph:
        visit(name)
    return layer


def is_machinery(name: str) -> bool:
    return name.split(".")[0] == MACHINERY


def render(machinery: bool) -> str:
    """The map of one zone: a line per module, `layer  module <- what it imports`."""
    graph = imports()
    layer = layers(graph)
    names = sorted((n for n in graph if is_machinery(n) == machinery),
                   key=lambda n: (layer[n], n))
    width = max(len(n) for n in names)
    lines = [f"{MAP_HEADING} (generated from the imports by `python -m "
             "slmlab.course.module_map`):", "layer, module, what it imports from the package.",
             ""]
    for name in names:
        line = f"    {layer[name]}  {name:<{width}}"
        if graph[name]:
            indent = " " * (len(line) + 5)
            line = textwrap.fill(", ".join(sorted(graph[name])), LINE_WIDTH,
                                 initial_indent=line + "  <- ", subsequent_indent=indent)
        lines.append(line)
    return "\n".join(line.rstrip() for line in lines)


def init_file(machinery: bool) -> Path:
    return PACKAGE / MACHINERY / "__init__.py" if machinery else PACKAGE / "__init__.py"


def with_map(text: str, machinery: bool) -> str:
    """An `__init__.py`'s text with its docstring's map block (from MAP_HEADING to the
    docstring's end) replaced by the current one."""
    start = text.index(MAP_HEADING)
    end = text.index('"""', start)
    return text[:start] + render(machinery) + "\n" + text[end:]


def stale() -> list[Path]:
    """The `__init__.py` files whose map differs from the imports."""
    return [init_file(m) for m in (False, True)
            if with_map(init_file(m).read_text(), m) != init_file(m).read_text()]


if __name__ == "__main__":
    for machinery in (False, True):
        path = init_file(machinery)
        path.write_text(with_map(path.read_text(), machinery))
        print(f"wrote the module map in {path.relative_to(PACKAGE.parent.parent)}")
