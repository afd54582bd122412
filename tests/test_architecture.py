"""Architecture rules that import-linter does not express."""

from __future__ import annotations

import ast
from pathlib import Path

import pyrovae

ROOT = Path(pyrovae.__file__).parent


def _package(module: str) -> str:
    """The top-level subpackage (or module) of a dotted pyrovae module name."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _private_imports(root: Path = ROOT):
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("pyrovae"):
                continue
            for alias in node.names:
                name_private = alias.name.startswith("_") and not alias.name.startswith("__")
                target_private = any(
                    p.startswith("_") and not p.startswith("__") for p in target.split(".")[1:]
                )
                if (name_private or target_private) and _package(target) != _package(module):
                    yield f"{module}: from {target} import {alias.name}"


def test_no_module_imports_a_private_name_of_another_package():
    assert list(_private_imports()) == []


def test_the_scan_sees_a_private_import(tmp_path):
    """The scanner itself: a private name imported across packages is reported."""
    fake = tmp_path / "pyrovae"
    (fake / "a").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "a" / "__init__.py").write_text("")
    (fake / "a" / "m.py").write_text("from ..b.n import _hidden\nfrom ..b import public\n")
    assert list(_private_imports(fake)) == ["pyrovae.a.m: from pyrovae.b.n import _hidden"]
