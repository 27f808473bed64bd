"""The package's two zones: the learner zone (what labs, widgets and `make progress` use)
never imports the machinery in `slmlab.course`, every learner module is used by a lab, and
the module maps in the two `__init__.py` files are the imports as they are."""

import ast
import json
import re

import pytest

from slmlab import REPO_ROOT
from slmlab.course import module_map

GRAPH = module_map.imports()
KNOWN = module_map.modules()
LEARNER = {name for name in GRAPH if not module_map.is_machinery(name)}


def notebook_sources(folder: str) -> dict[str, str]:
    """Each notebook's code, IPython magics and shell lines left out."""
    sources = {}
    for path in sorted((REPO_ROOT / folder).glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        sources[path.name] = "\n".join(line for line in code.splitlines()
                                       if not line.lstrip().startswith(("%", "!")))
    return sources


def test_the_learner_zone_never_imports_the_machinery():
    crossing = {name: sorted(filter(module_map.is_machinery, GRAPH[name])) for name in LEARNER}
    assert not {n: c for n, c in crossing.items() if c}


@pytest.mark.parametrize("folder", ["solutions", "labs"])
def test_labs_import_only_the_learner_zone(folder):
    for name, source in notebook_sources(folder).items():
        used = module_map.references(source, KNOWN)
        assert used and not set(filter(module_map.is_machinery, used)), (name, used)


def test_every_learner_module_is_used_by_a_lab_its_widgets_or_make_progress():
    reached, todo = set(), {"progress", "widgets"}
    for source in notebook_sources("solutions").values():
        todo |= module_map.references(source, KNOWN)
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            source = KNOWN[name].read_text()
            todo |= GRAPH[name] | module_map.named_in_strings(source, KNOWN)
    assert LEARNER <= reached, f"not used by any lab: {sorted(LEARNER - reached)}"


def test_the_module_maps_are_the_imports():
    assert not module_map.stale(), "run `python -m slmlab.course.module_map`"
    for machinery in (False, True):
        text = module_map.init_file(machinery).read_text()
        assert module_map.render(machinery) in text


def test_the_map_is_generated_from_real_imports_and_refuses_a_cycle():
    assert {"task", "saving", "tools"} <= GRAPH["export"], "imports inside functions count too"
    assert "course.runner" in GRAPH["course.bench"]
    with pytest.raises(ValueError, match="import cycle: a -> b -> a"):
        module_map.layers({"a": {"b"}, "b": {"a"}})
    assert module_map.layers({"a": set(), "b": {"a"}, "c": {"a", "b"}}) == {"a": 0, "b": 1,
                                                                          "c": 2}


def test_modules_are_named_for_their_concept_with_a_docstring():
    for name, path in KNOWN.items():
        assert not re.search(r"lab_?\d", name), f"{name}: a module is named for its concept"
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        assert docstring, f"{name} has no docstring saying what it is for"
        assert not re.search(r"(?i)\blabs? \d\d", docstring.split("\n\n")[0][:40]), \
            f"{name}'s docstring starts with a lab, not with its concept"
