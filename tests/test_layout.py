"""The house plan of the library (docs/architecture.md), checked on the code as it is.

Subpackages name their public API; each imports only the layers below it; the standard-library part
stays free of numpy and JAX (the Snakefile parses with Snakemake alone); nothing outside the MLP's own
module assumes the network is an MLP; no private name crosses a module boundary; modules, classes
and functions stay small enough to read.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "compactbnn"
SUBPACKAGES = ("config", "models", "symmetry", "inference", "inference.hmc", "inference.sgmcmc", "evaluation", "paper")

# Which part may import which (docs/architecture.md). "base" are the top-level modules data, io,
# threads and train: the foundation every layer above may use.
LAYERS = {
    "config": set(),
    "models": {"config"},
    "base": {"config", "models"},
    "symmetry": {"config", "models", "base"},
    "inference": {"config", "models", "base", "symmetry"},
    "evaluation": {"config", "models", "base", "symmetry"},
    "paper": {"config", "models", "base", "symmetry", "inference", "evaluation"},
}


def library_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def part_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE).parts
    return relative[0] if len(relative) > 1 else "base"


def imported_parts(path: Path) -> set[str]:
    """The parts of compactbnn a module imports (at any depth of its code)."""
    parts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("compactbnn"):
            names = node.module.split(".")[1:] or [alias.name for alias in node.names]
            for name in names[:1]:
                parts.add(name if (PACKAGE / name).is_dir() else "base")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("compactbnn."):
                    name = alias.name.split(".")[1]
                    parts.add(name if (PACKAGE / name).is_dir() else "base")
    return parts


@pytest.mark.parametrize("path", library_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_part_imports_only_the_layers_below_it(path):
    part = part_of(path)
    if path.name == "__init__.py" and path.parent == PACKAGE:
        return
    allowed = LAYERS[part] | {part}
    assert imported_parts(path) <= allowed, f"{path.relative_to(ROOT)} ({part}) imports {imported_parts(path) - allowed}"


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_every_subpackage_names_its_public_api_and_nothing_private(name):
    module = importlib.import_module(f"compactbnn.{name}")
    assert module.__doc__, f"compactbnn.{name} has no docstring saying what it holds"
    public = module.__all__
    assert public, f"compactbnn.{name}.__all__ is empty"
    assert not [n for n in public if n.startswith("_")]
    for attribute in public:
        assert hasattr(module, attribute), f"compactbnn.{name}.__all__ names {attribute}, which it lacks"


def test_the_standard_library_part_loads_no_numpy_and_no_jax():
    code = ("import sys; import compactbnn.config; from compactbnn.config import checks; "
            "print(sorted(m for m in ('numpy', 'jax', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT / "src")}).stdout
    assert out.strip() == "[]"


MLP_ONLY = re.compile(r"compactbnn\.models\.mlp|from compactbnn\.models import .*\bmlp\b|layer_sizes|\[\"weight\"\]|\[\"bias\"\]")


@pytest.mark.parametrize("path", [p for p in library_modules() if p.parent.name != "models"],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_nothing_outside_the_models_assumes_an_mlp(path):
    """A second architecture must be addable without editing the sampler, VI, rebasin or q_r."""
    hits = [f"{i}: {line.strip()}" for i, line in enumerate(path.read_text().splitlines(), 1) if MLP_ONLY.search(line)]
    assert not hits, f"{path.relative_to(ROOT)} assumes an MLP:\n" + "\n".join(hits)


def python_files_that_use_the_library() -> list[Path]:
    return sorted([*PACKAGE.rglob("*.py"), *(ROOT / "tests").glob("*.py"), *(ROOT / "workflow" / "scripts").glob("*.py"),
                   *(ROOT / "benchmarks").glob("*.py"), *(ROOT / "scripts").glob("*.py")])


def test_no_private_name_is_used_across_modules():
    """Neither ``from compactbnn.x import _name`` nor ``module._name`` on an imported compactbnn module."""
    offenders = []
    for path in python_files_that_use_the_library():
        tree = ast.parse(path.read_text())
        modules = set()  # local names bound to compactbnn modules
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("compactbnn"):
                offenders += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
                modules |= {a.asname or a.name for a in node.names if is_module(f"{node.module}.{a.name}")}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not offenders, "\n".join(offenders)


def is_module(dotted: str) -> bool:
    relative = Path(*dotted.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative / "__init__.py").is_file()


def test_modules_classes_and_functions_stay_small():
    too_long = []
    for path in library_modules():
        text = path.read_text()
        if len(text.splitlines()) > 400:
            too_long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines (module, at most 400)")
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            length = node.end_lineno - node.lineno + 1
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and length > 80:
                too_long.append(f"{path.relative_to(ROOT)}: function {node.name}, {length} lines (at most 80)")
            if isinstance(node, ast.ClassDef) and length > 150:
                too_long.append(f"{path.relative_to(ROOT)}: class {node.name}, {length} lines (at most 150)")
    assert not too_long, "\n".join(too_long)
