"""Imports run one way: the core (plain functions on Polars frames) never imports Dagster or the Dagster layer, and the
Dagster layer never imports the entry points that assemble and drive it. Read from the source with `ast`, so an
import inside a function counts as much as one at the top."""

import ast
import sys
from pathlib import Path

import pytest

import sahel_pipeline

PACKAGE = Path(sahel_pipeline.__file__).parent
# What assembles or drives the Dagster layer: the code location, the runner, the command line, the benchmark.
ENTRY_POINTS = ("definitions", "runner", "cli", "benchmark", "runlog", "startup")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, relative imports resolved against its package."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from package import module`
    return found


def offending(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in (PACKAGE / folder).rglob("*.py")
        for name in imported_modules(path)
        if any(name == f or name.startswith(f"{f}.") for f in forbidden)
    )


def test_the_core_imports_neither_dagster_nor_the_dagster_layer():
    assert offending("core", ("dagster", "sahel_pipeline.defs", *(f"sahel_pipeline.{e}" for e in ENTRY_POINTS))) == []


def test_the_dagster_layer_never_imports_the_entry_points():
    assert offending("defs", tuple(f"sahel_pipeline.{e}" for e in ENTRY_POINTS)) == []


@pytest.mark.parametrize(
    ("source", "imported"),
    [
        ("from sahel_pipeline.defs.resources import PipelineSettings\n", "sahel_pipeline.defs.resources"),
        ("def f():\n    import dagster as dg\n", "dagster"),
        ("from ..defs import io_manager\n", "sahel_pipeline.defs.io_manager"),
    ],
)
def test_an_import_the_rule_forbids_is_found(tmp_path, monkeypatch, source, imported):
    """The checker itself: a wrong import, at the top, inside a function or relative, is seen."""
    folder = tmp_path / "sahel_pipeline" / "core"
    folder.mkdir(parents=True)
    (folder / "wrong.py").write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "sahel_pipeline")
    assert f"core/wrong.py imports {imported}" in offending("core", ("dagster", "sahel_pipeline.defs"))
