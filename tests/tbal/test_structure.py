"""The library has no import cycle, deferred imports included (bench/structure.py finds them; issue 12)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _structure() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_structure", ROOT / "bench" / "structure.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def test_tbal_has_no_import_cycle() -> None:
    structure = _structure()
    modules = structure.scan(["tbal"])
    assert {"tbal.training.train", "tbal.training.aum", "tbal.models", "tbal.uncertainty"} <= set(modules)
    for top_level in (True, False):
        found = structure.cycles(modules, top_level=top_level)
        shown = [" -> ".join(structure.a_cycle(c, modules, top_level=top_level)) for c in found]
        assert found == [], f"import cycles in tbal/ ({'module-level' if top_level else 'any'}): {shown}"


def test_the_cycle_finder_finds_a_deferred_cycle(tmp_path: Path) -> None:
    """A three-module cycle closed by an import inside a function: not at module level, but in all."""
    structure = _structure()
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import f\n")
    (pkg / "b.py").write_text("from pkg import c\n\ndef f():\n    return c\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import b\n"
        "def g():\n    from pkg.a import x\n"
    )
    modules = structure.scan(["pkg"], root=tmp_path)
    assert structure.cycles(modules, top_level=True) == []
    assert structure.cycles(modules, top_level=False) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert structure.a_cycle(["pkg.a", "pkg.b", "pkg.c"], modules, top_level=False) == [
        "pkg.a",
        "pkg.b",
        "pkg.c",
        "pkg.a",
    ]


@pytest.mark.parametrize("module", ["tbal.training.aum", "tbal.models"])
def test_each_module_of_the_former_cycle_imports_first(module: str) -> None:
    """Imported first in a fresh interpreter, each loads (no name missing from a half-imported module)."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
