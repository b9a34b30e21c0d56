"""docs/modules.md is the module map: each module's imports from lotus-hf, as listed there, are the ones its code
makes (at any depth, lazy imports included), and they go one way, from modules listed earlier."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "lotus_hf"


def package_imports(path: Path) -> set[str]:
    """The lotus-hf modules (top level: `baselines`, `research`, ...) that the file at `path` imports."""
    depth = len(path.relative_to(PACKAGE).parts) - 1  # 0 for a top-level module
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            up = node.level - 1 - depth  # levels above the package root: 0 is the root itself
            inside = path.relative_to(PACKAGE).parts[: depth - (node.level - 1)] if up < 0 else ()
            parts = [*inside, *(node.module.split(".") if node.module else [])]
            names = [parts[0]] if parts else [alias.name for alias in node.names]
            found.update(names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lotus_hf."):
            found.add(node.module.split(".")[1])
    return found


def listed() -> list[tuple[str, set[str] | None]]:
    """(module, its imports as listed; None where the map does not list them one by one), in the map's order."""
    rows = []
    for line in (ROOT / "docs" / "modules.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        name = cells[0].strip("`").rstrip("/")
        imports = (
            None if "..." in cells[2] or "everything" in cells[2] else set(re.findall(r"[\w]+", cells[2])) - {"-"}
        )
        rows.append((name, imports))
    return rows


def test_the_module_map_lists_every_module_and_its_imports_one_way():
    rows = listed()
    names = [name for name, _ in rows]
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"} | {"baselines"}
    assert modules - {"__main__"} <= set(names), f"modules missing from docs/modules.md: {modules - set(names)}"
    for position, (name, imports) in enumerate(rows):
        files = sorted((PACKAGE / name).glob("*.py")) if (PACKAGE / name).is_dir() else [PACKAGE / f"{name}.py"]
        actual = set().union(*(package_imports(f) for f in files)) - {name}
        if imports is not None:
            assert actual == imports, f"{name}: the code imports {sorted(actual)}, the map says {sorted(imports)}"
        later = set(names[position + 1 :])
        assert not actual & later, f"{name} imports {sorted(actual & later)}, listed below it"
