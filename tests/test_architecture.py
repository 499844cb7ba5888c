"""The import graph flows one way, as docs/architecture.md lists it: each part of mini_flows
imports only from the layers below it, so a block never reaches up into a model or an
experiment, and a new module must be given its place here and in the document."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mini_flows"
LAYERS = [  # lowest first; the same list as docs/architecture.md
    {"files", "process", "version"},
    {"backend", "machine"},
    {"checks"},
    {"nn"},
    {"optim"},
    {"train", "checkpoint"},
    {"bijection"},
    {"chain"},
    {"discrete", "continuous", "data"},
    {"latent", "testing"},
    {"experiments"},
    {"cli"},
    {"__main__", "__init__"},
]
LEVEL = {part: level for level, parts in enumerate(LAYERS) for part in parts}


def part_of(module: str) -> str:
    """The top-level part of mini_flows that a dotted module name belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path) -> set[str]:
    """The parts of mini_flows a file imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mini_flows":
            found |= {part_of(f"mini_flows.{a.name}") for a in node.names} if node.module == "mini_flows" \
                else {part_of(node.module)}
        elif isinstance(node, ast.Import):
            found |= {part_of(a.name) for a in node.names if a.name.split(".")[0] == "mini_flows"}
    return found


def test_every_import_points_down_the_layers():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(("mini_flows", *path.relative_to(PACKAGE).with_suffix("").parts))
        part = part_of(module)
        assert part in LEVEL, f"{path.relative_to(PACKAGE)}: give {part!r} a layer in LAYERS and in the docs"
        upward += [f"{module} imports {other}" for other in imports(path)
                   if other != part and LEVEL.get(other, len(LAYERS)) >= LEVEL[part]]
    assert upward == []
