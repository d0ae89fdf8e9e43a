"""The import structure of the package: no cycles between modules, nothing in the library imports the scripts
or the benchmark package, and the files copied into Hub checkpoints import only each other."""

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "src" / "protomol_hf"
# What save_pretrained copies into a checkpoint (CONTRIBUTING.md, "The remote-code rule").
HUB_FILES = {path.stem for path in PACKAGE.glob("*_protomol.py")}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The package modules `path` imports (a `from package import module` names the module, not the package)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module name -> the names it imports, for every module of the package."""
    paths = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(path) for path in paths}
    return {module_name(path): imported_modules(path, known) for path in paths}


GRAPH = import_graph()


def test_no_import_cycles_between_package_modules():
    graph = {name: targets & GRAPH.keys() for name, targets in GRAPH.items()}
    visiting: list[str] = []
    done: set[str] = set()
    cycles: list[list[str]] = []

    def visit(name):
        if name in done:
            return
        if name in visiting:
            cycles.append([*visiting[visiting.index(name) :], name])
            return
        visiting.append(name)
        for target in graph[name]:
            visit(target)
        visiting.pop()
        done.add(name)

    for name in graph:
        visit(name)
    assert not cycles, f"import cycles: {cycles}"


def test_the_library_imports_neither_scripts_nor_benchmarks():
    for name, targets in GRAPH.items():
        assert not {target for target in targets if target.split(".")[0] in ("scripts", "benchmarks")}, name


def test_hub_files_import_only_each_other_and_third_party_packages():
    for stem in HUB_FILES:
        own = {target for target in GRAPH[f"protomol_hf.{stem}"] if target.startswith("protomol_hf")}
        assert own <= {f"protomol_hf.{other}" for other in HUB_FILES}, stem
