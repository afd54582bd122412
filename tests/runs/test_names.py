"""The run folder's file names: one table, and no module spells a name of it itself."""

from __future__ import annotations

import ast
from pathlib import Path

from pyrovae.atomic import previous_path
from pyrovae.runs import names

PACKAGE = Path(names.__file__).resolve().parents[1]

#: Every file name of the table (the constants in names.py that are strings).
FILE_NAMES = {
    value: key for key, value in vars(names).items() if key.isupper() and isinstance(value, str)
}


def test_names_are_distinct_and_plain_file_names():
    assert len(FILE_NAMES) == len(
        [k for k, v in vars(names).items() if k.isupper() and isinstance(v, str)]
    )
    for name in FILE_NAMES:
        assert name == Path(name).name and ("." in name or name in names.FOLDERS), name


def test_previous_checkpoint_is_the_name_checkpoints_keep():
    assert previous_path(names.CHECKPOINT).name == names.PREVIOUS_CHECKPOINT


def test_run_files_and_analyze_files_are_in_the_table():
    assert set(names.RUN_FILES) | set(names.ANALYZE_FILES) <= set(FILE_NAMES)
    assert names.samples_grid(16) == "samples-16.png"


def _string_literals(path: Path):
    """(line, text) of every string constant in the module that is not a docstring."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):  # the literal parts of f-strings
            for part in node.values:
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    yield node.lineno, part.value


def _names_a_file(text: str) -> str | None:
    """The run-folder file that the string literal ``text`` names (the whole literal is
    the name, or a path ending in it), else None. Prose that mentions a name (help texts,
    messages) is not a file name in code."""
    for name in FILE_NAMES:
        if text == name or text.endswith(("/" + name, "\\" + name)):
            return name
    return None


def test_names_a_file_finds_names_and_paths_only():
    assert _names_a_file("checkpoint.pt") == "checkpoint.pt"
    assert _names_a_file("/checkpoint.pt") == "checkpoint.pt"
    assert _names_a_file("RUN/metrics.csv") == "metrics.csv"
    assert _names_a_file("rows of metrics.csv") is None
    assert _names_a_file("checkpoint") is None


def test_no_module_spells_a_run_file_name():
    """A file name of the run folder is spelled as a string only in runs/names.py:
    every other module uses the constant, so writers and readers cannot drift apart."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == Path(names.__file__).resolve():
            continue
        for line, text in _string_literals(path):
            if _names_a_file(text):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {text!r}")
    assert not found, "\n".join(found)
